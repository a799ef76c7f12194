"""Execution accuracy (BIRD-exact EX) of Interactive-T2S vs the full-schema single-shot baseline, SAME LLM,
with the ablation of each part of the agent's design.

    .venv/bin/python -m benchmarks.text2sql.bench_ex [--methods agent,baseline,no-grounding,...]
        [--questions questions.json] [--out ex] [--model qwen2.5-coder-0.5b-instruct] [--base-url URL]
        [--limit N] [--budget-min M] [--fresh] [--report]

Methods: `baseline` (every CREATE TABLE, one completion), `agent` (AgentConfig defaults), the ablations
`no-grounding`, `no-grammar`, `no-repair`, `no-resample`, `no-stop` (each switches one part off), and `paper` (the paper's prompt
and loop). Questions are taken round-robin over the databases (so any prefix is balanced); every method answers a
question before the next question starts (paired). No per-question time budget: results do not depend on machine
load. Results are saved after every answer; a rerun with the same model resumes after what was answered.
`dev_questions.json` (written for tuning, never the benchmark's own questions) with `--out dev` is the
development run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path

from benchmarks._harness import LOAD_KEY, MACHINE_KEY, load_average, machine_info
from benchmarks.text2sql.common import HERE, RESULTS, databases, write_readme
from tunelab.io import atomic_write_json
from tunelab.report import Table

ABLATIONS = {"no-grounding": {"ground": False}, "no-grammar": {"constrain": False}, "no-repair": {"repair": False},
             "no-resample": {"max_repeats": 0}, "no-stop": {"stop_on_answer": False}}
SWITCHED_OFF = {"no-grounding": "the controller's searches before the first reply (table list instead; dates too)",
                "no-grammar": "constrained decoding (free text, parsed)",
                "no-repair": "the controller's rewrites and hints after a failing or empty query (a retry hint only)",
                "no-resample": "the sampled reply after a repetition (the first repeated action stops the loop)",
                "no-stop": "stopping at the first query with rows (the model decides when it is Done)",
                "paper": "everything above: the paper's prompt and loop"}
METHODS = ("agent", "baseline", *ABLATIONS, "paper")


def round_robin(questions: list[dict]) -> list[dict]:
    by_db: dict[str, list[dict]] = {}
    for q in questions:
        by_db.setdefault(q["db"], []).append(q)
    mixed = itertools.zip_longest(*by_db.values())
    return [q for group in mixed for q in group if q is not None]


def agent_config(method: str):
    from tunelab.text2sql.agent_config import AgentConfig

    if method == "paper":
        return AgentConfig.paper()
    return AgentConfig(**ABLATIONS.get(method, {}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", default="agent,baseline")
    parser.add_argument("--questions", default="questions.json")
    parser.add_argument("--out", default="ex", help="results/<out>.json, .md and .png")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--protocol", default="text", choices=("text", "tools"))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--budget-min", type=float, default=None, help="stop starting new questions after this")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--fresh", action="store_true",
                        help="drop the saved answers of the methods named (after a change to the agent) and rerun them")
    args = parser.parse_args()
    out = RESULTS / f"{args.out}.json"
    if args.report:
        write_report(json.loads(out.read_text()), args.out)
        return
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")

    import dataclasses

    from tunelab.text2sql.agent import Agent
    from tunelab.text2sql.baseline import predict_full_schema
    from tunelab.text2sql.db import open_database
    from tunelab.text2sql.evaluate import Example, Prediction, judge
    from tunelab.text2sql.llm import make_llm
    from tunelab.text2sql.tools import Toolbox, load_encoder_or_none

    questions_path = HERE / args.questions
    questions = round_robin(json.loads(questions_path.read_text()))
    if args.limit:
        questions = questions[: args.limit]
    paths = databases()
    llm = make_llm(args.model, args.base_url, threads=args.threads)
    encoder = load_encoder_or_none("all-minilm-l6-v2")
    boxes = {}
    data = previous_run(out, args)
    records = data["records"]
    if args.fresh:
        for method in methods:
            records.pop(method, None)
    start, load_start = time.perf_counter(), load_average()
    for n, q in enumerate(questions, start=1):
        todo = [m for m in methods if q["id"] not in {r["question_id"] for r in records.get(m, [])}]
        if not todo:
            continue
        if args.budget_min and time.perf_counter() - start > 60 * args.budget_min:
            break
        if q["db"] not in boxes:
            boxes[q["db"]] = Toolbox(open_database(paths[q["db"]]), encoder=encoder)
        box = boxes[q["db"]]
        example = Example(q["id"], paths[q["db"]], q["question"], q["sql"], "", q["difficulty"])
        line = []
        for method in todo:
            trajectory = None
            if method == "baseline":
                pred = predict_full_schema(llm, box.schema, q["question"], max_tokens=200)
            else:
                config = dataclasses.replace(agent_config(method), protocol=args.protocol)
                traj = Agent(box, llm, config).run(q["question"])
                trajectory = {k: v for k, v in traj.to_dict().items() if k != "messages"}
                pred = Prediction(traj.final_sql, traj.model_turns, traj.prompt_tokens, traj.completion_tokens,
                                  traj.wall_s, traj.status, trajectory)
            outcome = judge(box.db, example, pred).__dict__
            outcome["db"] = q["db"]
            if trajectory is not None:
                outcome["trajectory"] = trajectory
                outcome["executed"] = any(c["ok"] for c in trajectory["candidates"])
            else:
                outcome["executed"] = outcome["error"] is None
            records.setdefault(method, []).append(outcome)
            line.append(f"{method}={int(outcome['ex'])}")
            save(out, records, args, len(questions), load_start)
        print(f"[{n}/{len(questions)}] {q['id']} {' '.join(line)} ({time.perf_counter() - start:.0f}s)", flush=True)
    save(out, records, args, len(questions), load_start, finished=True)
    write_report(json.loads(out.read_text()), args.out)


def previous_run(out: Path, args) -> dict:
    """An earlier run of the same model and question set (so a stopped run resumes), else a new one."""
    if out.exists():
        old = json.loads(out.read_text())
        if (old.get("model"), old.get("questions_file")) == (args.model, args.questions):
            return old
    return {"records": {}}


def save(out: Path, records: dict, args, planned: int, load_start: float, finished: bool = False) -> None:
    atomic_write_json(out, {
        "model": args.model, "endpoint": args.base_url or "local transformers (CPU)", "protocol": args.protocol,
        "questions_file": args.questions, "questions_planned": planned, "finished": finished,
        MACHINE_KEY: {**machine_info(), "torch_threads": args.threads}, LOAD_KEY: [load_start, load_average()],
        "summary": summarize_all(records), "records": records,
    })


def summarize_all(records: dict) -> dict:
    from tunelab.text2sql.evaluate import Outcome, summarize

    fields = set(Outcome.__dataclass_fields__)
    result = {}
    for method, rows in records.items():
        block = summarize([Outcome(**{k: v for k, v in r.items() if k in fields}) for r in rows])
        block["no_executed_sql"] = 100.0 * sum(not r["executed"] for r in rows) / max(len(rows), 1)
        block["by_database"] = {}
        for db in sorted({r["db"] for r in rows}):
            picked = [r for r in rows if r["db"] == db]
            block["by_database"][db] = {
                "n": len(picked), "ex": 100.0 * sum(r["ex"] for r in picked) / len(picked),
                "mean_prompt_tokens": statistics.fmean(r["prompt_tokens"] for r in picked),
                "median_latency_s": statistics.median(r["latency_s"] for r in picked)}
        result[method] = block
    return result


def paired(records: dict, a: str, b: str) -> tuple[list[dict], list[dict]]:
    """Both methods' records on the questions both answered, in the same order."""
    by_id = {r["question_id"]: r for r in records[b]}
    left = [r for r in records[a] if r["question_id"] in by_id]
    return left, [by_id[r["question_id"]] for r in left]


def bootstrap_ci(diffs: list[float], draws: int = 5000, seed: int = 0) -> tuple[float, float]:
    import random

    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(diffs, k=len(diffs))) for _ in range(draws))
    return means[int(0.025 * draws)], means[int(0.975 * draws) - 1]


def write_report(data: dict, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tunelab.io import atomic_savefig, atomic_write_text

    records, summary = data["records"], data["summary"]
    methods = [m for m in METHODS if m in records]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    dbs = sorted({r["db"] for m in methods for r in records[m]})
    width = 0.8 / max(len(methods), 1)
    for i, m in enumerate(methods):
        by_db = summary[m]["by_database"]
        axes[0].bar([j + width * i for j in range(len(dbs))], [by_db.get(d, {}).get("ex", 0) for d in dbs], width,
                    label=m)
        levels = ("simple", "moderate", "challenging")
        axes[1].bar([j + width * i for j in range(3)], [summary[m][d].get("ex", 0) for d in levels], width, label=m)
    axes[0].set_xticks([j + 0.4 - width / 2 for j in range(len(dbs))], dbs)
    axes[1].set_xticks([j + 0.4 - width / 2 for j in range(3)], ["simple", "moderate", "challenging"])
    for ax in axes:
        ax.set_ylabel("EX (%)")
        ax.set_ylim(0, 100)
    axes[0].set_title("by database")
    axes[1].set_title("by difficulty")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"{data['model']}: {summary[methods[0]]['overall']['n']} questions")
    fig.tight_layout()
    atomic_savefig(fig, RESULTS / f"{name}.png")
    plt.close(fig)
    text = ex_markdown(data, name)
    atomic_write_text(RESULTS / f"{name}.md", text)
    write_readme()
    print(text)


def ex_markdown(data: dict, name: str) -> str:
    """results/<name>.md from results/<name>.json: the EX table, the paired comparison and the ablations."""
    records, summary = data["records"], data["summary"]
    methods = [m for m in METHODS if m in records]
    rows = []
    for m in methods:
        o = summary[m]["overall"]
        by_level = [f"{summary[m][d]['ex']:.1f} ({summary[m][d]['n']})" if summary[m][d]["n"] else "-"
                    for d in ("simple", "moderate", "challenging")]
        rows.append([m, o["n"], f"**{o['ex']:.1f}**", *by_level, f"{summary[m]['no_executed_sql']:.1f}",
                     f"{o['mean_turns']:.1f}", f"{o['mean_prompt_tokens']:.0f}", f"{o['mean_completion_tokens']:.0f}",
                     f"{o['median_latency_s']:.1f}"])
    table = Table(["method", "questions", "EX %", "simple", "moderate", "challenging", "no executed SQL %",
                   "model turns", "prompt tokens / q", "completion tokens / q", "median latency s"],
                  rows).to_markdown()
    text = [f"### Execution accuracy (`bench_ex.py --questions {data['questions_file']}`)\n",
            f"Model: {data['model']} via {data['endpoint']} ({data['protocol']} protocol), "
            f"{data['machine']['torch_threads']} torch thread(s), greedy decoding, no per-question time budget; "
            f"{data['questions_planned']} questions planned, "
            f"{'all run' if data['finished'] else 'run still in progress'}; 1-minute load average at the last save "
            f"{data['load_average_1min'][-1]:.1f}. EX by difficulty: % (questions).\n", table, ""]
    if "agent" in records and "baseline" in records:
        a, b = paired(records, "agent", "baseline")
        if a:
            diffs = [float(x["ex"]) - float(y["ex"]) for x, y in zip(a, b)]
            low, high = bootstrap_ci(diffs)
            text.append(f"Agent - baseline on the {len(a)} questions both answered: "
                        f"**{100 * statistics.fmean(diffs):+.1f} EX points** (95 % bootstrap CI "
                        f"[{100 * low:+.1f}, {100 * high:+.1f}]); agent wins {sum(d > 0 for d in diffs)}, "
                        f"loses {sum(d < 0 for d in diffs)}.\n")
            db_rows = []
            for db in sorted({r["db"] for r in a}):
                pa = [x for x in a if x["db"] == db]
                pb = [y for x, y in zip(a, b) if x["db"] == db]
                ratio_tok = statistics.fmean(x["prompt_tokens"] for x in pa) / max(
                    statistics.fmean(y["prompt_tokens"] for y in pb), 1)
                ratio_lat = statistics.median(x["latency_s"] for x in pa) / max(
                    statistics.median(y["latency_s"] for y in pb), 1e-9)
                db_rows.append([db, len(pa), f"{100 * statistics.fmean(x['ex'] for x in pa):.1f}",
                                f"{100 * statistics.fmean(y['ex'] for y in pb):.1f}", f"x{ratio_tok:.2f}",
                                f"x{ratio_lat:.2f}"])
            text += [Table(["database", "questions", "agent EX %", "baseline EX %", "prompt tokens agent / baseline",
                            "median latency agent / baseline"], db_rows).to_markdown(), ""]
    ablations = [m for m in methods if m not in ("agent", "baseline")]
    if "agent" in records and ablations:
        abl_rows = []
        for m in ablations:
            a, b = paired(records, "agent", m)
            if a:
                diffs = [float(x["ex"]) - float(y["ex"]) for x, y in zip(a, b)]
                low, high = bootstrap_ci(diffs)
                abl_rows.append([m, SWITCHED_OFF.get(m, ""), len(a),
                                 f"{100 * statistics.fmean(y['ex'] for y in b):.1f}",
                                 f"{100 * statistics.fmean(x['ex'] for x in a):.1f}",
                                 f"{100 * statistics.fmean(diffs):+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]",
                                 sum(not y["executed"] for y in b)])
        text += ["Ablations: each switches one part of the agent off (paired with the full agent on the same "
                 "questions; the gain that part carries, with a 95 % bootstrap CI).\n",
                 Table(["variant", "switched off", "questions", "variant EX %", "agent EX %",
                        "agent - variant (EX points)", "variant runs without executed SQL"], abl_rows).to_markdown(),
                 ""]
    text.append(f"![EX](results/{name}.png)\n")
    return "\n".join(text)


if __name__ == "__main__":
    main()
