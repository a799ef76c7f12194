"""Displacement guards: off = today's loss bit for bit; on = the hand-computed formula; the weak-negative filter."""

from __future__ import annotations

import math
import random
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from tunelab.align.preference.config import AlignConfig
from tunelab.align.preference.data import PreferenceExample, choose_weak_negatives
from tunelab.align.preference.losses import epa_loss_from_rewards
from tunelab.align.preference.guards import chosen_nll, dpop_chosen_rewards, edit_distance, edit_similarity, too_similar
from tunelab.align.preference.trainer import preference_loss
from tunelab.errors import UserError

OFF = dict(nll_weight=0.0, dpop_lambda=0.0, weak_weight=1.0, w=1.0)


def options(method="epa", ns=1, nw=2, **kw):
    return SimpleNamespace(**{**OFF, "method": method, "num_strong": ns, "num_weak": nw, "beta": 0.5, **kw})


def random_logps(rows, group, seed=0):
    gen = torch.Generator().manual_seed(seed)
    policy = -(torch.rand(rows, group, generator=gen, dtype=torch.float64) * 20 + 1)
    reference = -(torch.rand(rows, group, generator=gen, dtype=torch.float64) * 20 + 1)
    return policy, reference


def test_guard_defaults_are_off(tmp_path):
    cfg = AlignConfig(output_dir=str(tmp_path), use_cpu=True)
    assert (cfg.nll_weight, cfg.dpop_lambda, cfg.weak_weight, cfg.weak_max_similarity) == (0.0, 0.0, 1.0, None)
    for bad in (dict(nll_weight=-1.0), dict(dpop_lambda=-0.1), dict(weak_max_similarity=1.5)):
        with pytest.raises(UserError):
            AlignConfig(output_dir=str(tmp_path), use_cpu=True, **bad)


@pytest.mark.parametrize("method, ns, nw", [("dpo", 1, 0), ("epa", 1, 2), ("epa", 2, 3)])
def test_guards_off_is_todays_loss_bitwise(method, ns, nw):
    policy, reference = random_logps(6, 1 + ns + nw)
    rewards = 0.5 * (policy - reference)
    chosen, strong, weak = rewards[:, 0], rewards[:, 1:1 + ns], rewards[:, 1 + ns:]
    today = -F.logsigmoid(chosen - strong[:, 0]) if method == "dpo" else epa_loss_from_rewards(chosen, strong, weak)
    got = preference_loss(rewards, options(method, ns, nw), policy[:, 0], torch.full((6,), 3))
    assert torch.equal(got, today)


def test_dpop_is_eq3_of_the_paper():
    # chosen below the reference: penalty log pi_ref(y+) - log pi(y+) = 1; beta 0.5, lambda 2
    pol_w, ref_w, pol_l, ref_l, beta, lam = -3.0, -2.0, -4.0, -2.0, 0.5, 2.0
    f64 = dict(dtype=torch.float64)
    rewards = beta * (torch.tensor([[pol_w, pol_l]], **f64) - torch.tensor([[ref_w, ref_l]], **f64))
    inside = beta * ((pol_w - ref_w) - (pol_l - ref_l) - lam * max(0.0, ref_w - pol_w))  # = -0.5
    expected = math.log1p(math.exp(-inside))  # -log sigmoid(inside)
    for method in ("dpo", "epa"):  # EPA with ns=1, nw=0, w=1 is DPO, with the penalty too
        got = preference_loss(rewards, options(method, 1, 0, dpop_lambda=lam, beta=beta))
        assert float(got) == pytest.approx(expected, abs=1e-12)
    assert inside == -0.5 and expected > math.log(2)  # the penalty turned a winning margin (+0.5) into a losing one


def test_dpop_changes_nothing_while_chosen_is_above_the_reference():
    policy, reference = random_logps(8, 3, seed=1)
    policy[:, 0] = reference[:, 0] + torch.linspace(0.0, 3.0, 8, dtype=torch.float64)
    rewards = 0.5 * (policy - reference)
    plain = preference_loss(rewards, options("epa", 1, 1))
    assert torch.equal(preference_loss(rewards, options("epa", 1, 1, dpop_lambda=5.0)), plain)
    below = dpop_chosen_rewards(torch.tensor([-0.4, 0.3]), 2.5)
    assert torch.allclose(below, torch.tensor([-0.4 - 2.5 * 0.4, 0.3]))


def test_dpop_in_the_epa_sum_shifts_the_chosen_reward():
    policy, reference = random_logps(5, 4, seed=2)
    rewards = 0.5 * (policy - reference)
    lam = 0.7
    shifted = rewards[:, 0] - 0.5 * lam * torch.clamp(reference[:, 0] - policy[:, 0], min=0)
    expected = torch.log(1.0 + torch.exp(rewards[:, 1:] - shifted[:, None]).sum(-1))
    got = preference_loss(rewards, options("epa", 1, 2, dpop_lambda=lam))
    torch.testing.assert_close(got, expected)


def test_nll_term_adds_the_mean_token_nll_of_the_chosen_response():
    policy, reference = random_logps(4, 3, seed=3)
    rewards = 0.5 * (policy - reference)
    lengths = torch.tensor([1, 4, 7, 2])
    plain = preference_loss(rewards, options("epa", 1, 1))
    got = preference_loss(rewards, options("epa", 1, 1, nll_weight=0.3), policy[:, 0], lengths)
    torch.testing.assert_close(got - plain, 0.3 * (-policy[:, 0] / lengths.double()))


def test_nll_lengths_count_the_tokens_sequence_logps_sums_over():
    from tunelab.align.logprobs import masked_sequence_logps
    from tunelab.align.preference.trainer import response_lengths

    gen = torch.Generator().manual_seed(4)
    per_token = -torch.rand(6, 9, generator=gen, dtype=torch.float64)
    mask = torch.zeros(6, 10, dtype=torch.long)
    for i, (start, end) in enumerate([(3, 10), (5, 8), (2, 3), (4, 10), (6, 9), (1, 10)]):
        mask[i, start:end] = 1
    total = masked_sequence_logps(per_token, mask)
    mean = masked_sequence_logps(per_token, mask, average=True)
    lengths = response_lengths(mask, group=2)
    torch.testing.assert_close(chosen_nll(total.view(-1, 2)[:, 0], lengths[:, 0]), -mean.view(-1, 2)[:, 0])


def test_weak_weight_scales_each_weak_term():
    policy, reference = random_logps(5, 4, seed=5)
    rewards = 0.5 * (policy - reference)
    got = preference_loss(rewards, options("epa", 1, 2, weak_weight=0.25))
    diff = rewards - rewards[:, :1]
    expected = torch.log(1.0 + torch.exp(diff[:, 1]) + 0.25 * torch.exp(diff[:, 2:]).sum(-1))
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("a, b, distance", [
    ("2+2=4", "2+2=5", 1), ("kitten", "sitting", 3), ("", "abc", 3), ("abc", "abc", 0), ("flaw", "lawn", 2),
    ("34 + 7 = 41", "34 + 7 = 42", 1),
])
def test_edit_distance_known_values(a, b, distance):
    assert edit_distance(a, b) == edit_distance(b, a) == distance
    assert edit_similarity(a, b) == pytest.approx(1 - distance / max(len(a), len(b), 1))


def test_similarity_of_the_papers_example():
    assert edit_similarity("2+2=4", "2+2=5") == pytest.approx(0.8)
    assert too_similar("2+2=5", "2+2=4", 0.7) and not too_similar("2+2=5", "2+2=4", 0.8)
    assert not too_similar("Paris is the capital.", "2+2=4", 0.5)
    assert not too_similar("2+2=4", "2+2=4", None)  # filter off


@settings(max_examples=200, deadline=None)
@given(st.text("ab +=0123", max_size=12), st.text("ab +=0123", max_size=12), st.floats(0, 1))
def test_length_bound_never_changes_the_decision(a, b, limit):
    assert too_similar(a, b, limit) == (edit_similarity(a, b) > limit)


def arithmetic_examples():
    texts = ["2+2=4", "2+2=5", "3+3=6", "Paris", "2+3=4"]
    return [PreferenceExample(prompt=f"q{i}", chosen=t, rejected=[f"no {i}"]) for i, t in enumerate(texts)]


def test_filter_drops_exactly_the_too_similar_weak_negatives():
    exs = arithmetic_examples()
    limit = 0.7
    seen = [set() for _ in exs]
    for seed in range(40):
        for i, row in enumerate(choose_weak_negatives(exs, 2, "chosen", seed=seed, max_similarity=limit)):
            assert len(row) == 2 and all(edit_similarity(t, exs[i].chosen) <= limit for t in row)
            seen[i].update(row)
    for i, ex in enumerate(exs):  # every admissible response of another prompt is drawn at some seed
        assert seen[i] == {o.chosen for o in exs if o is not ex and edit_similarity(o.chosen, ex.chosen) <= limit}
    assert "2+2=5" not in seen[0] and "2+3=4" not in seen[0]


def test_filter_off_draws_as_before():
    exs = arithmetic_examples()
    for seed in range(5):
        rng = random.Random(seed)  # today's rule: rng.sample over the other prompts' responses, in pool order
        pool = [(e.prompt, t) for e in exs for t in (e.chosen, *e.rejected)]
        expected = [rng.sample([t for p, t in pool if p != e.prompt], 3) for e in exs]
        assert choose_weak_negatives(exs, 3, "both", seed=seed) == expected


def test_filter_that_leaves_too_few_candidates_is_a_user_error():
    exs = [PreferenceExample(prompt=f"What is {a} + 7?", chosen=f"{a} + 7 = {a + 7}", rejected=[f"{a} + 7 = {a + 8}"])
           for a in (31, 32, 33)]
    with pytest.raises(UserError, match="fewer than nw=2"):
        choose_weak_negatives(exs, 2, "both", seed=0, max_similarity=0.5)


def test_trainer_nll_guard_adds_the_models_mean_token_nll(tmp_path):
    from tunelab.align.logprobs import sequence_logps
    from tunelab.align.preference.trainer import PreferenceTrainer
    from tunelab.models import tiny_llama

    records = [{"prompt": f"What is {a} + 7?", "chosen": f"{a} + 7 = {a + 7}", "rejected": f"{a} + 7 = {a + 8}"}
               for a in (31, 42, 53, 64)]
    losses, batch = {}, None
    for weight in (0.0, 0.4):
        model, tok = tiny_llama(seed=0)
        cfg = AlignConfig(output_dir=str(tmp_path / str(weight)), use_cpu=True, per_device_train_batch_size=4,
                          num_weak=1, nll_weight=weight, max_steps=1, report_to="none", disable_tqdm=True)
        trainer = PreferenceTrainer(model, cfg, records, tok)
        batch = next(iter(trainer.get_train_dataloader()))
        with torch.no_grad():
            losses[weight] = float(trainer.compute_loss(trainer.model, batch))
    with torch.no_grad():
        mean = sequence_logps(model, batch["input_ids"], batch["attention_mask"], batch["completion_mask"],
                              average=True).view(-1, 3)[:, 0]
    assert losses[0.4] - losses[0.0] == pytest.approx(0.4 * float(-mean.mean()), abs=1e-5)


@pytest.mark.parametrize("flags, message", [
    (["--dpop-lambda", "-1"], "dpop_lambda must be >= 0"),
    (["--weak-max-similarity", "1.5"], "between 0 and 1"),
    (["--nll-weight", "x"], "nll-weight"),
])
def test_train_cli_guard_options_bad_values(tmp_path, capsys, flags, message):
    from tunelab.cli import main

    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "p", "chosen": "c", "rejected": "r"}\n')
    code = main(["align", "train", "--data", str(data), "--out", str(tmp_path / "out"), "--model", "tiny-llama", *flags])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_train_cli_with_every_guard_on(tmp_path, capsys):
    import json

    from tunelab.cli import main

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"What is {a} + 7?", "chosen": f"{a} + 7 = {a + 7}",
                                        "rejected": f"{a} + 7 = {a + 8}"}) + "\n" for a in (31, 42, 53)))
    code = main(["align", "train", "--data", str(data), "--out", str(tmp_path / "out"), "--model", "tiny-llama",
                 "--nw", "1", "--steps", "1", "--batch-size", "3", "--nll-weight", "0.5", "--dpop-lambda", "1",
                 "--weak-max-similarity", "0.95", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["guards"] == {"nll_weight": 0.5, "dpop_lambda": 1.0, "weak_max_similarity": 0.95}
    assert "logps/chosen" in summary["final"]
