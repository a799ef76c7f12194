"""The tabular experiment: exact expectations against brute force, uniqueness of EPA, non-uniqueness of DPO."""

import math

import torch

from tunelab.align.preference.theory import (TheoryConfig, expected_dpo_loss, expected_epa_loss, make_problem, other_prompt_draws,
                                  run_method, run_theory, slope_and_pearson)

SMALL = TheoryConfig(prompts=6, responses=6, inits=3, weak_negatives=(8,), weak_draws=16, seed=3, max_iter=200)


def test_expected_losses_against_brute_force():
    problem = make_problem(SMALL)
    r = torch.randn(problem.true_reward.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    P, K = r.shape
    dpo = sum(problem.positive_prob[x, y] * math.log1p(math.exp(r[x, problem.partner[x, y]] - r[x, y]))
              for x in range(P) for y in range(K)) / P
    assert abs(float(expected_dpo_loss(r, problem)) - dpo) < 1e-12
    for source in ("uniform", "other-prompts"):  # EPA: a p*-weighted mean over the weak table, term by term
        table = problem.weak[source]
        brute = sum(problem.positive_prob[x, y] * sum(
            math.log(1 + math.exp(r[x, problem.partner[x, y]] - r[x, y])
                     + sum(math.exp(r[x, u] - r[x, y]) for u in table[x, y, d, :3]))
            for d in range(table.shape[2])) / table.shape[2] for x in range(P) for y in range(K)) / P
        assert abs(float(expected_epa_loss(r, problem, 3, 1.0, source)) - brute) < 1e-10
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


def test_other_prompt_draws_follow_the_trainers_distribution():
    """Weak negatives as the trainer draws them: a recorded response of another prompt x' (its chosen y' ~ p*(.|x')
    or its rejected partner, each half the time), so P(u | x) = mean over x' != x of (p*(u|x') + P(s(x', y') = u))/2."""
    gen = torch.Generator().manual_seed(0)
    P, K = 4, 5
    prob = torch.softmax(3 * torch.randn(P, K, generator=gen, dtype=torch.float64), dim=-1)  # peaked: prompts differ
    partner = (torch.arange(K).unsqueeze(0) + torch.randint(1, K, (P, K), generator=gen)) % K
    draws = other_prompt_draws(prob, partner, (2000, 1), gen)  # [P, K, 2000, 1]
    for x in range(P):
        expected = torch.zeros(K, dtype=torch.float64)
        for other in range(P):
            if other == x:
                continue
            rejected = torch.zeros(K, dtype=torch.float64).index_add_(0, partner[other], prob[other])
            expected += (prob[other] + rejected) / 2 / (P - 1)
        seen = torch.bincount(draws[x].reshape(-1), minlength=K).double() / draws[x].numel()
        assert float((seen - expected).abs().max()) < 0.01
        own = (prob[x] + torch.zeros(K, dtype=torch.float64).index_add_(0, partner[x], prob[x])) / 2
        assert float((seen - own).abs().max()) > 0.05  # drawing from x's own records would look different


def test_theory_runs_each_weak_source_and_labels_it():
    cfg = TheoryConfig(prompts=4, responses=4, inits=2, weak_negatives=(0, 4), weak_draws=8, max_iter=100)
    labels = [r["method"] for r in run_theory(cfg)["results"]]
    assert labels == ["dpo", "epa(nw=0)", "epa(nw=4)", "epa(nw=4, other-prompts)"]
