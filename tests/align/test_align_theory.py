"""The tabular experiment: exact expectations against brute force, uniqueness of EPA, non-uniqueness of DPO."""

import math

import torch

from tunelab.align.theory import (TheoryConfig, expected_dpo_loss, expected_epa_loss, make_problem, run_method,
                                  slope_and_pearson)

SMALL = TheoryConfig(prompts=6, responses=6, inits=3, weak_negatives=(8,), weak_draws=16, seed=3, max_iter=200)


def test_expected_losses_against_brute_force():
    problem = make_problem(SMALL)
    r = torch.randn(problem.true_reward.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    P, K = r.shape
    dpo = sum(problem.positive_prob[x, y] * math.log1p(math.exp(r[x, problem.partner[x, y]] - r[x, y]))
              for x in range(P) for y in range(K)) / P
    assert abs(float(expected_dpo_loss(r, problem)) - dpo) < 1e-12
    x, y, d = 2, 4, 5
    weak = [r[x, u] for u in problem.weak[x, y, d, :3]]
    term = math.log(1 + math.exp(r[x, problem.partner[x, y]] - r[x, y]) + sum(math.exp(u - r[x, y]) for u in weak))
    # the EPA expectation is a p*-weighted mean of such terms over the weak table
    per = torch.stack([torch.log(1 + torch.exp(r[x, problem.partner[x, y]] - r[x, y])
                                 + torch.exp(r[x, problem.weak[x, y, dd, :3]] - r[x, y]).sum())
                       for dd in range(problem.weak.shape[2])])
    assert abs(float(per[d]) - term) < 1e-12
    # nw = 0 and w = 1: EPA is DPO
    assert abs(float(expected_epa_loss(r, problem, 0, 1.0)) - float(expected_dpo_loss(r, problem))) < 1e-12


def test_epa_unique_and_recovers_reward_dpo_depends_on_init():
    problem = make_problem(SMALL)
    dpo = run_method(problem, SMALL, "dpo")
    epa = run_method(problem, SMALL, "epa", nw=8)
    assert epa["spread"] < 1e-4  # one minimiser whatever the initialisation
    assert dpo["spread"] > 0.1  # many
    assert epa["pearson"] > 0.95
    assert abs(epa["slope"] - 1) < abs(dpo["slope"] - 1)


def test_slope_and_pearson_formula():
    true = torch.randn(50, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).numpy()
    slope, r = slope_and_pearson(2.5 * true + 1.0, true)
    assert abs(slope - 2.5) < 1e-12 and abs(r - 1) < 1e-12
