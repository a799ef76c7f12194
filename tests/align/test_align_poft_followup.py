"""PoFT followed by DPO / EPA: verified preference pairs and a second stage that learns them."""

import pytest
import torch

from tunelab.align.logprobs import response_logps
from tunelab.align.poft.followup import FollowupSettings, preference_records, preference_stage
from tunelab.align.poft.study import StudySettings, train_target
from tunelab.align.poft.tasks import corrupt, is_correct, make_problems


def test_preference_pairs_prefer_the_true_answer_with_the_same_working():
    problems = make_problems(12, seed=5, task="addition")
    records = preference_records(problems)
    noisy = corrupt(problems, 0.5, seed=1)
    for problem, record, row in zip(problems, records, noisy):
        assert record["prompt"] == problem["prompt"] and record["chosen"] == problem["response"]
        assert not is_correct(record["rejected"], problem["answer"])
        assert record["rejected"].rsplit("=", 1)[0] == record["chosen"].rsplit("=", 1)[0]
        if row["corrupted"]:  # the pair's negative is the very wrong answer the noisy SFT data contains
            assert row["response"] == record["rejected"]


@pytest.mark.parametrize("method", ["dpo", "epa"])
def test_second_stage_raises_the_margin_of_chosen_over_rejected(method):
    torch.manual_seed(0)
    settings = StudySettings(target="tiny-llama", n_train=8, epochs=1, batch_size=4)
    train = make_problems(8, seed=2, task="addition")
    model, tokenizer, _ = train_target(settings, train, "sft", seed=0, scores=None)
    records = preference_records(train)

    def margin(m):
        chosen = response_logps(m, tokenizer, [(r["prompt"], r["chosen"]) for r in records])
        rejected = response_logps(m, tokenizer, [(r["prompt"], r["rejected"]) for r in records])
        return float((chosen - rejected).mean())

    before = margin(model)
    tuned, _ = preference_stage(model, tokenizer, records, method, seed=0,
                                follow=FollowupSettings(epochs=2, batch_size=4, learning_rate=5e-3))
    assert margin(tuned) > before + 0.05
    assert margin(model) == pytest.approx(before, abs=1e-5)  # the first-stage model is left untouched


def test_stage_specs_name_a_method_and_guard_options():
    from tunelab.align.poft.followup import parse_stage
    from tunelab.errors import UserError

    assert parse_stage("epa") == ("epa", {})
    assert parse_stage("epa+nll_weight=1+dpop_lambda=50") == ("epa", {"nll_weight": 1.0, "dpop_lambda": 50.0})
    assert parse_stage("dpo+weak_max_similarity=none") == ("dpo", {"weak_max_similarity": None})
    for bad in ("ipo", "epa+lr=1", "epa+nll_weight", "epa+nll_weight=x"):
        with pytest.raises(UserError):
            parse_stage(bad)


def test_choice_uses_validation_accuracy_only():
    from tunelab.align.poft.followup import choose_on_validation

    runs = [{"first": "poft", "val_accuracy": {"a": 0.5, "b": 0.6, "c": 0.6}, "accuracy": {"a": 0.9, "b": 0.1, "c": 0.1}},
            {"first": "poft", "val_accuracy": {"a": 0.5, "b": 0.4, "c": 0.5}, "accuracy": {"a": 0.9, "b": 0.1, "c": 0.1}},
            {"first": "sft", "val_accuracy": {"a": 0.0, "b": 0.0, "c": 0.0}, "accuracy": {"a": 0.0, "b": 0.0, "c": 0.0}}]
    assert choose_on_validation(runs, "poft", ("a", "b", "c")) == "c"  # means 0.5, 0.5, 0.55; test accuracy ignored
    assert choose_on_validation(runs, "sft", ("a", "b", "c")) == "a"  # a tie goes to the earlier stage
    assert choose_on_validation([], "poft", ("a",)) is None


def test_validation_problems_are_neither_training_nor_test_problems():
    from tunelab.align.poft.followup import validation_problems

    settings = StudySettings(task="addition", n_train=20, n_test=10)
    seen = make_problems(30, settings.data_seed, task="addition")
    val = validation_problems(settings, 16, seen)
    assert len(val) == 16 and not {p["prompt"] for p in val} & {p["prompt"] for p in seen}


def test_nll_guard_keeps_the_chosen_response_likelier_than_plain_epa():
    from tunelab.align.poft.followup import chosen_logp

    torch.manual_seed(0)
    settings = StudySettings(target="tiny-llama", n_train=8, epochs=1, batch_size=4)
    train = make_problems(8, seed=2, task="addition")
    model, tokenizer, _ = train_target(settings, train, "sft", seed=0, scores=None)
    records = preference_records(train)
    follow = FollowupSettings(epochs=3, batch_size=4, learning_rate=2e-2, num_weak=2)
    after = {stage: chosen_logp(preference_stage(model, tokenizer, records, stage, seed=0, follow=follow)[0],
                                tokenizer, records) for stage in ("epa", "epa+nll_weight=5")}
    assert after["epa+nll_weight=5"] > after["epa"] + 0.5


@pytest.mark.slow
def test_followup_with_guards_chooses_on_validation(tmp_path):
    from tunelab.align.poft.followup import run_followups

    settings = StudySettings(target="tiny-llama", aligned=("tiny-llama",), n_train=8, n_test=4, seeds=(0,),
                             methods=("poft",), epochs=1, batch_size=4)
    stages = ("epa", "epa+nll_weight=1", "epa+dpop_lambda=50")
    follow = FollowupSettings(methods=stages, n_val=4, epochs=1, batch_size=4)
    out = run_followups(settings, follow, tmp_path / "cache", runs_file=tmp_path / "runs.jsonl")
    (run,) = out["runs"]
    assert out["validation_problems"] == 4 and set(run["val_accuracy"]) == {"none", *stages}
    best = max(run["val_accuracy"][st] for st in stages[1:])
    chosen = out["chosen_on_validation"]["poft"]
    assert chosen in stages[1:] and run["val_accuracy"][chosen] == best  # only guarded stages compete
    assert set(out["chosen_logp"]["poft"]) == {"none", *stages}
