"""Study pieces: Plackett-Luce preferences follow Bradley-Terry, the true reward ranks joy over gloom, tiny run."""

import math

import numpy as np
import pytest

from tunelab.align.preference.study import StudyConfig, plackett_luce_records, run_study, true_reward


def test_plackett_luce_pairs_follow_bradley_terry():
    rng = np.random.default_rng(0)
    recs = plackett_luce_records(["p"], [["a", "b"]], np.array([[1.0, 0.0]]), rankings=4000, rng=rng)
    freq = np.mean([r["chosen"] == "a" for r in recs])
    assert abs(freq - 1 / (1 + math.exp(-1.0))) < 0.03
    assert all(r["rejected"] == ["b" if r["chosen"] == "a" else "a"] for r in recs)


@pytest.mark.slow
def test_true_reward_and_tiny_study_run():
    from tunelab.models import load_sentence_encoder

    enc = load_sentence_encoder("all-minilm-l6-v2")
    joy, gloom = true_reward(["What a wonderful happy day, I love it!", "A dreary, sad and awful day."], enc, 10.0)
    assert joy > 0 > gloom
    cfg = StudyConfig(model="tiny-llama", prompts=2, train_responses=2, heldout_responses=2, rankings_per_prompt=1,
                      seeds=(0,), steps=1, batch_size=2, eval_samples=1, max_new_tokens=4)
    out = run_study(cfg)
    assert [r["method"] for r in out["runs"]] == ["dpo", "epa"] and out["records"] == 2
    for run in out["runs"]:
        assert -1 <= run["pearson"] <= 1 and 0 <= run["win_rate"] <= 1 and math.isfinite(run["kl"])
