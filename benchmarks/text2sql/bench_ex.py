"""Execution accuracy (BIRD-exact EX) of Interactive-T2S vs the full-schema single-shot baseline, SAME LLM.

    .venv/bin/python benchmarks/text2sql/bench_ex.py [--model qwen2.5-coder-0.5b-instruct] [--base-url URL]
        [--limit N] [--budget-min M]

Questions are taken round-robin over the three databases (so any prefix is balanced); both methods answer each
question before the next starts (paired). Results are saved after every question, so a run stopped by the time
budget keeps what it measured, and a rerun with the same model and agent limits resumes after the questions
already answered; the JSON says how many questions ran. `--report` regenerates README/PNG only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import QUESTIONS, RESULTS, databases, write_readme  # noqa: E402

from tunelab.io import atomic_write_json  # noqa: E402

OUT = RESULTS / "ex.json"


def round_robin(questions: list[dict]) -> list[dict]:
    by_db: dict[str, list[dict]] = {}
    for q in questions:
        by_db.setdefault(q["db"], []).append(q)
    mixed = itertools.zip_longest(*by_db.values())
    return [q for group in mixed for q in group if q is not None]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--budget-min", type=float, default=None, help="stop starting new questions after this")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--question-budget-s", type=float, default=300.0, help="agent wall-clock budget")
    parser.add_argument("--max-turns", type=int, default=12)
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    if args.report:
        write_report(json.loads(OUT.read_text()))
        return

    from tunelab.text2sql.agent import Agent
    from tunelab.text2sql.baseline import predict_full_schema
    from tunelab.text2sql.db import open_database
    from tunelab.text2sql.evaluate import Example, Prediction, judge
    from tunelab.text2sql.llm import make_llm
    from tunelab.text2sql.tools import Toolbox, load_encoder_or_none

    questions = round_robin(json.loads(QUESTIONS.read_text()))
    if args.limit:
        questions = questions[: args.limit]
    paths = databases()
    llm = make_llm(args.model, args.base_url, threads=args.threads)
    encoder = load_encoder_or_none("all-minilm-l6-v2")
    dbs, boxes = {}, {}
    records = previous_records(args)
    done = {r["question_id"] for r in records["agent"]}
    if done:
        print(f"resuming: {len(done)} questions already answered", flush=True)
    start = time.perf_counter()
    for n, q in enumerate(questions, start=1):
        if q["id"] in done:
            continue
        if args.budget_min and time.perf_counter() - start > 60 * args.budget_min:
            break
        if q["db"] not in dbs:
            dbs[q["db"]] = open_database(paths[q["db"]])
            boxes[q["db"]] = Toolbox(dbs[q["db"]], encoder=encoder)
        db, box = dbs[q["db"]], boxes[q["db"]]
        example = Example(q["id"], paths[q["db"]], q["question"], q["sql"], "", q["difficulty"])
        traj = Agent(box, llm, max_turns=args.max_turns, budget_s=args.question_budget_s,
                     max_tokens=160).run(q["question"])
        agent_pred = Prediction(traj.final_sql, len(traj.steps), traj.prompt_tokens, traj.completion_tokens,
                                traj.wall_s, traj.status, traj.to_dict())
        base_pred = predict_full_schema(llm, box.schema, q["question"], max_tokens=200)
        for name, pred in (("agent", agent_pred), ("baseline", base_pred)):
            outcome = judge(db, example, pred).__dict__
            outcome["db"] = q["db"]
            if name == "agent":
                outcome["trajectory"] = {k: v for k, v in traj.to_dict().items() if k != "messages"}
            records[name].append(outcome)
        print(f"[{n}/{len(questions)}] {q['id']} agent={records['agent'][-1]['ex']} "
              f"baseline={records['baseline'][-1]['ex']} ({time.perf_counter() - start:.0f}s)", flush=True)
        save(records, args, len(questions))
    save(records, args, len(questions), finished=True)
    write_report(json.loads(OUT.read_text()))


def previous_records(args) -> dict:
    """The records of an earlier run with the same model and agent limits (so a stopped run resumes), else none."""
    if OUT.exists():
        old = json.loads(OUT.read_text())
        same = (old.get("model"), old.get("agent_max_turns"), old.get("agent_budget_s")) == (
            args.model, args.max_turns, args.question_budget_s)
        if same and len(old["records"]["agent"]) == len(old["records"]["baseline"]):
            return old["records"]
    return {"agent": [], "baseline": []}


def save(records: dict, args, planned: int, finished: bool = False) -> None:
    from tunelab.text2sql.evaluate import Outcome, summarize

    fields = set(Outcome.__dataclass_fields__)
    summaries = {name: summarize([Outcome(**{k: v for k, v in r.items() if k in fields}) for r in rows])
                 for name, rows in records.items()}
    by_db = {}
    for name, rows in records.items():
        for db in sorted({r["db"] for r in rows}):
            picked = [r for r in rows if r["db"] == db]
            by_db.setdefault(name, {})[db] = {"n": len(picked), "ex": 100.0 * sum(r["ex"] for r in picked) / len(picked)}
    atomic_write_json(OUT, {
        "model": args.model, "endpoint": args.base_url or "local transformers (CPU)",
        "questions_total": len(json.loads(QUESTIONS.read_text())), "questions_planned": planned,
        "questions_run": len(records["agent"]), "finished": finished, "budget_min": args.budget_min,
        "agent_max_turns": args.max_turns, "agent_budget_s": args.question_budget_s, "torch_threads": args.threads,
        "machine_load_1min": __import__("os").getloadavg()[0],
        "summary": summaries, "by_database": by_db, "records": records,
    })


def write_report(data: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tunelab.io import atomic_savefig, atomic_write_text

    s = data["summary"]
    rows = []
    for name in ("agent", "baseline"):
        o = s[name]["overall"]
        rows.append(f"| {name} | {o['n']} | {o['ex']:.1f} | {o['test_suite']:.1f} | {o['error_rate']:.1f} | "
                    f"{o['mean_turns']:.1f} | {o['mean_prompt_tokens']:.0f} | {o['mean_completion_tokens']:.0f} | "
                    f"{o['median_latency_s']:.1f} |")
    ratio_tokens = s["agent"]["overall"]["mean_prompt_tokens"] / max(s["baseline"]["overall"]["mean_prompt_tokens"], 1)
    ratio_latency = s["agent"]["overall"]["median_latency_s"] / max(s["baseline"]["overall"]["median_latency_s"], 1e-9)
    table = "\n".join(["| method | questions | EX % | test-suite % | no SQL or failing SQL % | mean turns | prompt tokens / q | "
                       "completion tokens / q | median latency s |", "|---|---|---|---|---|---|---|---|---|", *rows])
    db_rows = [f"| {db} | " + " | ".join(f"{data['by_database'][m].get(db, {}).get('ex', float('nan')):.1f}"
                                         for m in ("agent", "baseline")) + f" | {data['by_database']['agent'][db]['n']} |"
               for db in data["by_database"]["agent"]]
    fig, ax = plt.subplots(figsize=(5, 3))
    dbs = list(data["by_database"]["agent"])
    for i, m in enumerate(("agent", "baseline")):
        ax.bar([j + 0.38 * i for j in range(len(dbs))], [data["by_database"][m][d]["ex"] for d in dbs], 0.38, label=m)
    ax.set_xticks([j + 0.19 for j in range(len(dbs))], dbs)
    ax.set_ylabel("EX (%)")
    ax.set_title(f"{data['model']}: {data['questions_run']} questions")
    ax.legend()
    atomic_savefig(fig, RESULTS / "ex.png")
    plt.close(fig)
    text = (f"### Execution accuracy (`bench_ex.py`)\n\nModel: {data['model']} via {data['endpoint']}. "
            f"{data['questions_run']} of {data['questions_total']} questions ran (planned {data['questions_planned']}, "
            f"budget {data['budget_min']} min: "
            f"{'stopped by the time budget' if data['questions_run'] < data['questions_planned'] else 'all ran'}); "
            f"questions taken round-robin over the "
            f"databases. Agent: at most {data['agent_max_turns']} turns, {data['agent_budget_s']:g} s per question; "
            f"{data['torch_threads']} torch thread(s); 1-minute load average of the shared 2-core machine at the last "
            f"save: {data['machine_load_1min']:.1f}.\n\n{table}\n\nagent / baseline: prompt tokens x{ratio_tokens:.2f}, median latency "
            f"x{ratio_latency:.2f}.\n\n| database | agent EX % | baseline EX % | questions |\n|---|---|---|---|\n"
            + "\n".join(db_rows) + "\n\n![EX](results/ex.png)\n")
    atomic_write_text(RESULTS / "ex.md", text)
    write_readme()
    print(text)


if __name__ == "__main__":
    main()
