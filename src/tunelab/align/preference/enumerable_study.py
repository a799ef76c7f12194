"""The enumerable study: DPO vs EPA on a small transformer LM where pi(.|x), pi* and J are exact.

Per data seed: a task (r*, rejected partners), a random reference LM and the same records for every method;
per method: `inits` policy initialisations (fresh random LMs, the same for every method) trained with
full-batch Adam on either the exact expected loss (size 0) or N sampled records per prompt. Results are stored after every
(method, seed) cell, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch

from tunelab.align.preference.enumerable_config import (EXACT, WEAK_RULES, EnumerableConfig, MethodSpec,  # noqa: F401
                                                        parse_method)
from tunelab.align.preference.enumerable_data import RecordSet, expected_records, sample_records, weak_table, with_weak
from tunelab.align.preference.enumerable_lm import build_lm, log_policy_table, sequence_grid
from tunelab.align.preference.enumerable_loss import record_loss
from tunelab.align.preference.enumerable_task import (EnumerableTask, kl_divergence, make_task, optimal_objective,
                                                      reward_recovery, rlhf_objective)
from tunelab.align.preference.theory import centred, optimise
from tunelab.errors import UserError


def _generator(*key: int) -> torch.Generator:
    """A generator seeded from a tuple, so each (seed, size, ...) has its own stream whatever runs before it."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence(list(key)).generate_state(1)[0]))


def training_records(task: EnumerableTask, spec: MethodSpec, size: int, seed: int, draws: int) -> RecordSet:
    """The records a method trains on. Sampled records depend on (seed, size) only: every method sees the same."""
    rule_id = WEAK_RULES.index(spec.weak)
    if size == EXACT:
        weak = weak_table(task, spec.weak, draws, spec.nw, _generator(seed, 1, rule_id, spec.nw)) if spec.nw else None
        return expected_records(task, weak)
    records = sample_records(task, size, _generator(seed, 2, size))
    return with_weak(records, task, spec.weak, spec.nw, _generator(seed, 3, size, rule_id, spec.nw)) if spec.nw else records


def train_policies(model, grid: torch.Tensor, log_ref: torch.Tensor, records: list[RecordSet], spec: MethodSpec,
                   cfg: EnumerableConfig) -> tuple[torch.Tensor, list[float]]:
    """Member e of the stack trains on records[e]: full-batch Adam, cosine schedule to 0 (the last steps settle
    the optimum). Returns (log pi tables [E, P, K] in float64, final losses)."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / cfg.steps)))

    def losses(tables):
        return [record_loss(spec.loss, t, log_ref, r, cfg.beta, cfg.w) for t, r in zip(tables, records)]

    for _ in range(cfg.steps):
        total = sum(losses(log_policy_table(model, grid, cfg.prompts)))
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        log_pi = log_policy_table(model, grid, cfg.prompts).double()
        return log_pi, [float(v) for v in losses(log_pi)]


def run_metrics(log_pi: torch.Tensor, log_ref: torch.Tensor, task: EnumerableTask, beta: float) -> dict:
    implicit = beta * (log_pi - log_ref)
    return {**reward_recovery(implicit, task.true_reward), "kl": kl_divergence(log_pi, log_ref),
            "J": rlhf_objective(log_pi, log_ref, task.true_reward, beta)}


def spread(learned: list[torch.Tensor]) -> float:
    """Max over (x, y) of the std (ddof 0) across initialisations of the centred implicit reward."""
    return float(torch.stack([centred(r) for r in learned]).std(dim=0, unbiased=False).max())


def table_optimum(log_ref: torch.Tensor, records: RecordSet, spec: MethodSpec, task: EnumerableTask,
                  cfg: EnumerableConfig) -> dict:
    """Metrics of the loss's own minimiser over *all* policies (a free softmax table, L-BFGS in float64): what a
    perfectly fitted LM would reach, which separates the loss's bias from the network's."""
    def objective(theta):
        return record_loss(spec.loss, torch.log_softmax(theta, dim=-1), log_ref, records, cfg.beta, cfg.w)

    theta, loss, _ = optimise(objective, log_ref.clone(), max_iter=500, tolerance=1e-10)
    return {**run_metrics(torch.log_softmax(theta, dim=-1), log_ref, task, cfg.beta), "loss": loss}


def reference_table(cfg: EnumerableConfig, task: EnumerableTask, seed: int) -> torch.Tensor:
    """log pi_ref [P, K] (float64) of the seed's random reference LM."""
    grid = sequence_grid(cfg.prompts, task.responses)
    with torch.no_grad():
        reference = build_lm(cfg.prompts, cfg.tokens, cfg.positions, cfg.shape, [1000 * seed])
        return log_policy_table(reference, grid, cfg.prompts)[0].double()


def run_cell(cfg: EnumerableConfig, method: str, seed: int) -> dict:
    """One (method, data seed): every size x initialisation, trained together as one stack of LMs."""
    spec = parse_method(method)
    task = make_task(cfg.prompts, cfg.positions, cfg.tokens, seed, cfg.reward_scale)
    log_ref = reference_table(cfg, task, seed)
    jobs = [(size, i) for size in cfg.sizes for i in range(cfg.inits)]
    records = {size: training_records(task, spec, size, seed, cfg.weak_draws) for size in cfg.sizes}
    # initialisation i is the same LM for every size and method of a seed
    model = build_lm(cfg.prompts, cfg.tokens, cfg.positions, cfg.shape, [1000 * seed + 1 + i for _, i in jobs])
    log_pi, losses = train_policies(model, sequence_grid(cfg.prompts, task.responses), log_ref,
                                    [records[size] for size, _ in jobs], spec, cfg)
    sizes = {}
    for size in cfg.sizes:
        members = [e for e, (s, _) in enumerate(jobs) if s == size]
        runs = [{**run_metrics(log_pi[e], log_ref, task, cfg.beta), "loss": losses[e]} for e in members]
        sizes[str(size)] = {"runs": runs, "spread": spread([cfg.beta * (log_pi[e] - log_ref) for e in members]),
                            **{k: float(np.mean([r[k] for r in runs])) for k in runs[0]}}
        if spec.loss == "epa" and size == EXACT:  # DPO's exact loss has no minimiser: its infimum is at infinity
            sizes[str(size)]["table_optimum"] = table_optimum(log_ref, records[size], spec, task, cfg)
    return {"method": spec.label, "spec": method, "seed": seed, "sizes": sizes,
            "J_optimal": optimal_objective(log_ref, task.true_reward, cfg.beta),
            "J_reference": rlhf_objective(log_ref, log_ref, task.true_reward, cfg.beta)}


def cell_key(method: str, seed: int) -> str:
    return f"{method}|seed={seed}"


def load_store(path: Path | None, cfg: EnumerableConfig) -> dict:
    """The stored cells of an earlier run with the same config (else a fresh store); a different config is refused."""
    from tunelab.io import to_jsonable

    config = to_jsonable(dataclasses.asdict(cfg))
    if path is None or not path.is_file():
        return {"config": config, "cells": {}}
    stored = json.loads(path.read_text())
    if stored.get("config") != config:
        raise UserError(f"{path} holds a run with another configuration: remove it or choose another output")
    return stored


def run_study(cfg: EnumerableConfig, store: Path | None = None, progress=None) -> dict:
    """Every (method, seed) cell, resuming from `store` (a JSON path, rewritten atomically after each cell)."""
    from tunelab.align.preference.enumerable_report import summarize
    from tunelab.io import atomic_write_json

    state = load_store(store, cfg)
    todo = [(m, s) for s in cfg.seeds for m in cfg.methods if cell_key(m, s) not in state["cells"]]
    for method, seed in progress(todo) if progress is not None else todo:
        state["cells"][cell_key(method, seed)] = run_cell(cfg, method, seed)
        state["summary"] = summarize(state["cells"].values())
        if store is not None:
            atomic_write_json(store, state)
    state["summary"] = summarize(state["cells"].values())
    if store is not None:
        atomic_write_json(store, state)
    return state


STORE_NAME, FIGURE_NAME = "enumerable.json", "enumerable.png"


def run_into(cfg: EnumerableConfig, folder: Path, progress=None) -> dict:
    """The study into `folder`: enumerable.json (rewritten after each cell, so a rerun resumes) and, at the end,
    enumerable.png. What `tunelab align enumerable` and benchmarks/align/bench_enumerable.py both write."""
    from tunelab.align.preference.enumerable_report import enumerable_figure
    from tunelab.io import atomic_savefig

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    outcome = run_study(cfg, store=folder / STORE_NAME, progress=progress)
    atomic_savefig(enumerable_figure(outcome["summary"]), folder / FIGURE_NAME)
    return outcome
