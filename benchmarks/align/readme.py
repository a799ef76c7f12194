"""Regenerate benchmarks/align/README.md from the result JSON files (called by every bench script)."""

from __future__ import annotations

import json
from pathlib import Path

from tunelab.io import atomic_write_text
from tunelab.report import Table

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def _loader(results: Path):
    def load(name: str) -> dict | None:
        path = Path(results) / name
        return json.loads(path.read_text()) if path.is_file() else None

    return load


def _fmt(x, digits=4):
    return "n/a" if x is None else (f"{x:.{digits}g}" if isinstance(x, float) else str(x))


STUDY_MEASURES = ("pearson", "slope", "kl", "reward", "win_rate")


def readme_text(results: Path = RESULTS) -> str:
    """The README made from the JSON files in `results` (pure: reads, never writes)."""
    _load = _loader(results)
    parts = ["# align benchmarks", "",
             "Generated from `results/*.json` by the scripts in this folder (do not edit by hand).", ""]
    loss = _load("loss_equality.json")
    if loss:
        parts += ["## EPA (ns=1, nw=0) vs TRL's DPO sigmoid loss", "",
                  f"`python -m benchmarks.align.bench_loss`: {loss['batches']} random batches through TRL's "
                  "`DPOTrainer.compute_loss` and ours, tiny random Llama policy and reference.", "",
                  Table(["comparison", "max abs difference", "goal"],
                        [[k, _fmt(v), "< 1e-6" if "w=1 " in k or k.startswith("dpo") else "(not a goal)"]
                         for k, v in loss["max_abs_difference"].items()]).to_markdown(), ""]
    theory = _load("theory.json")
    if theory:
        parts += ["## Exact tabular experiment", "", "`python -m benchmarks.align.bench_theory` "
                  f"({theory['config']['prompts']} prompts x {theory['config']['responses']} responses, "
                  f"{theory['config']['inits']} initialisations). Goal: EPA slope 1 +/- 0.05, spread < 1e-3. Weak "
                  "negatives uniform over the response space (`epa(nw=k)`) or drawn as the trainer draws them "
                  "(`other-prompts`: a response recorded for another prompt, its chosen or its rejected). The latter "
                  "are not uniform, so the minimiser carries their log-density, r* - log q(y|x) up to a per-prompt "
                  "constant (as in noise-contrastive estimation): a small slope bias that more weak negatives do "
                  "not remove. Slope sd over "
                  "initialisations (ddof 1).", "",
                  Table(["method", "slope", "slope sd", "Pearson r", "spread", "KL to ref", "loss"],
                        [[r["method"], _fmt(r["slope"]), _fmt(r["slope_std"]), _fmt(r["pearson"]), _fmt(r["spread"]),
                          _fmt(r["kl"]), _fmt(r["loss"])] for r in theory["results"]]).to_markdown(), "",
                  "![theory](results/theory.png)", ""]
    enum = _load("enumerable.json")
    if enum:
        from tunelab.align.preference.enumerable_report import summary_rows

        c, s = enum["config"], enum["summary"]
        parts += ["## Enumerable study: a transformer LM over a finite response set", "",
                  f"`python -m benchmarks.align.bench_enumerable` (or `tunelab align enumerable --out "
                  f"benchmarks/align/results`, the same call): {c['prompts']} prompts x "
                  f"{c['tokens'] ** c['positions']} responses ({c['positions']} positions x {c['tokens']} tokens), "
                  f"r* ~ N(0, {c['reward_scale']}) per (prompt, response), beta {c['beta']}, one fixed rejected partner "
                  f"per preferred response (a comparison graph that is not strongly connected), a {c['layers']}-layer "
                  f"transformer, {c['inits']} initialisations, {c['steps']} full-batch steps at lr {c['learning_rate']}; "
                  f"data seeds {c['seeds']}. N = records per prompt (exact: the expected loss). Mean +/- 95 % CI "
                  f"half-width over the data seeds (t, ddof=1). J(pi*) = {s['J_optimal']['mean']:.3f}, "
                  f"J(pi_ref) = {s['J_reference']['mean']:.3f}.", ""]
        headers = ["method", "slope", "Pearson r", "slope-1 error", "spread over inits", "KL to ref", "J"]
        for size in map(str, c["sizes"]):
            parts += [f"N = {'exact expected loss' if size == '0' else size}:", "",
                      Table(headers, summary_rows(s, size)).to_markdown(), ""]
        parts += ["![enumerable](results/enumerable.png)", ""]
    thr = _load("throughput.json")
    if thr:
        parts += ["## Throughput and memory vs TRL's DPOTrainer", "",
                  f"`python -m benchmarks.align.bench_throughput`: {thr['model']}, LoRA r={thr['lora_r']}, "
                  f"{thr['batch_prompts']} prompts per step, {thr['response_words']}-word responses, {thr['threads']} "
                  f"torch thread(s), fp32, {thr['rounds']} alternating rounds of {thr['steps_per_round']} steps, "
                  f"1-min load average {thr['load_average_1min']:.1f} at the end; median step time (first step "
                  "excluded); ratios against TRL measured in the same run. Peak memory = highest RSS during a "
                  "trainer's round minus the RSS at its start (CPU; approximate). TRL's DPOConfig turns gradient "
                  "checkpointing on by default, TrainingArguments (and AlignConfig) leave it off: each setting is "
                  "measured with every trainer the same. Goals: speed >= 1.0x per sequence, DPO peak <= 1.2x, "
                  "EPA peak per sequence <= 1.2x.", ""]
        for run in thr["runs"]:
            parts += [f"Gradient checkpointing **{'on' if run['gradient_checkpointing'] else 'off'}**:", "",
                      Table(["trainer", "sequences/step", "median step s", "sequences/s",
                             "speed ratio vs TRL (per sequence)", "peak MiB", "peak ratio vs TRL",
                             "peak ratio per sequence"],
                            [[r["name"], r["sequences_per_step"], _fmt(r["median_step_s"]),
                              _fmt(r["sequences_per_s"]), _fmt(r["ratio_vs_trl"], 3),
                              _fmt(r["peak_rss_increase_mib"], 4), _fmt(r["peak_ratio_vs_trl"], 3),
                              _fmt(r["peak_per_sequence_ratio_vs_trl"], 3)]
                             for r in run["trainers"]]).to_markdown(), ""]
        parts += ["![throughput](results/throughput.png)", ""]
    return "\n".join(parts)


def write_readme() -> Path:
    return atomic_write_text(HERE / "README.md", readme_text())


if __name__ == "__main__":
    print(write_readme())
