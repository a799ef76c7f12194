"""`tunelab demo` section for align: the exact theory experiment and a small controlled-reward study."""

from __future__ import annotations

from pathlib import Path

from tunelab.report import Section, Table


def theory_section(out_dir: Path) -> Section:
    from tunelab.align.preference.theory import TheoryConfig, run_theory, theory_figure
    from tunelab.progress import track

    cfg = TheoryConfig(prompts=8, responses=8, inits=3, weak_negatives=(0, 4, 16), weak_draws=32, max_iter=300)
    outcome = run_theory(cfg, progress=lambda jobs: track(jobs, "align theory"))
    rows = [[r["method"], r["slope"], r["pearson"], r["spread"], r["kl"]] for r in outcome["results"]]
    epa = outcome["results"][-1]
    dpo = outcome["results"][0]
    section = Section(
        title="EPA vs DPO: exact tabular experiment",
        prose=("Softmax policies over a shared finite response space; the preferred response follows the energy-based "
               "model p*(y|x) = softmax r*(x, .), each recorded with one fixed rejected partner (a comparison graph "
               "that is not strongly connected). Expected losses are optimised to convergence (L-BFGS, float64) from "
               f"{cfg.inits} initialisations (at most {cfg.max_iter} L-BFGS iterations; DPO's loss has no "
               "minimiser here, so where it stops depends on the start and the cap). Learned implicit rewards are "
               "compared with r* after centring per prompt."),
        key_numbers={"EPA slope": epa["slope"], "EPA spread": epa["spread"], "DPO slope": dpo["slope"],
                     "DPO spread": dpo["spread"]},
        results={"config": outcome["config"], "rows": rows},
    )
    section.tables.append(Table(["method", "slope", "Pearson r", "spread across inits", "KL to ref"], rows,
                                caption="Slope and Pearson r of learned on true reward"))
    section.add_figure(theory_figure(outcome), "align_theory.png", out_dir, caption="Learned vs true reward (first init)")
    return section


def study_section(out_dir: Path, full: bool = False) -> Section:
    from tunelab.align.preference.study import StudyConfig, run_study, study_figure
    from tunelab.progress import track

    if full:
        cfg = StudyConfig(prompts=8, seeds=(0, 1), steps=8, train_responses=3, heldout_responses=3,
                          rankings_per_prompt=2, eval_samples=1, max_new_tokens=16)
    else:
        cfg = StudyConfig(prompts=4, seeds=(0,), steps=4, train_responses=3, heldout_responses=3, rankings_per_prompt=2,
                          eval_samples=1, max_new_tokens=12)
    outcome = run_study(cfg, progress=lambda jobs: track(jobs, "align study"))
    rows = [[r["method"], r["seed"], r["pearson"], r["slope"], r["kl"], r["reward"], r["win_rate"]]
            for r in outcome["runs"]]
    section = Section(
        title="EPA vs DPO: controlled-reward study (small)",
        prose=("SmolLM2-135M-Instruct with LoRA; responses sampled from the reference; true reward = MiniLM "
               "joy-minus-gloom similarity; preferences drawn by Plackett-Luce/Bradley-Terry from it. Demo size: "
               f"{len(cfg.seeds)} seed(s), {cfg.prompts} prompts, {cfg.steps} steps of {cfg.batch_size} prompts, "
               f"{cfg.heldout_responses} held-out responses per prompt, {cfg.max_new_tokens}-token responses. It shows "
               "the pipeline, not which method is better: a handful of noisy comparisons on one data sample cannot "
               "rank them. The evidence for EPA on a neural LM is the enumerable study (benchmarks/align, "
               "`tunelab align enumerable`), where the optimum is exact."),
        key_numbers={f"r(implicit,true) {m}": s["pearson"]["mean"] for m, s in outcome["summary"].items()},
        results={k: v for k, v in outcome.items() if k != "config"},
    )
    section.tables.append(Table(["method", "seed", "Pearson r", "slope", "KL", "true reward", "win rate"], rows))
    section.add_figure(study_figure(outcome), "align_study.png", out_dir, caption="Held-out correlation; reward vs KL")
    return section


def run(out_dir: Path, full: bool = False) -> list[Section]:
    """`full`: the controlled-reward study with 8 prompts, 8 steps and 2 seeds (4, 4 and 1 by default)."""
    out_dir = Path(out_dir)
    return [theory_section(out_dir), study_section(out_dir, full)]
