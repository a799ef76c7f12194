"""PoFT followed by DPO / EPA: verified preference pairs and a second stage that learns them."""

import pytest
import torch

from tunelab.align.logprobs import response_logps
from tunelab.align.poft_followup import FollowupSettings, preference_records, preference_stage
from tunelab.align.poft_study import StudySettings, train_target
from tunelab.align.poft_tasks import corrupt, is_correct, make_problems


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
