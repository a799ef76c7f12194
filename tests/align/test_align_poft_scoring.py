"""PoFT scoring step with tiny-llama: exact scores, caching keyed by content, resume, and one-line errors."""

import json

import pytest
import torch

from tunelab.align.poft import scoring as poft_scoring
from tunelab.align.poft.scoring import AlignedScores, encode_example, score_dataset, score_pairs
from tunelab.errors import UserError
from tunelab.models import load_causal_lm

PAIRS = [("What is 2 + 3?", "5"), ("Convert 2 km to m.", "2000"), ("What is 7 * 8?", "56"),
         ("What is 10 - 4? Answer with the number only, please.", "6"), ("Say hi.", "hi there, friend")]


@pytest.fixture(scope="module")
def tiny():
    return load_causal_lm("tiny-llama", seed=0)


def _reference_score(model, tokenizer, prompt, response):
    """One unpadded sequence, full log-softmax, mean over the response tokens."""
    prompt_ids, response_ids = encode_example(tokenizer, prompt, response)
    input_ids = prompt_ids + response_ids
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([input_ids])).logits[0].double(), -1)
    terms = [logp[t - 1, input_ids[t]].item() for t in range(len(prompt_ids), len(input_ids))]
    return sum(terms) / len(terms)


def test_response_tokens_cover_answer_and_end_of_turn(tiny):
    _, tokenizer = tiny
    prompt_ids, response = encode_example(tokenizer, "What is 2 + 3?", "5")
    assert tokenizer.decode(response) == "5<|im_end|>"
    assert tokenizer.decode(prompt_ids).endswith("<|im_start|>assistant\n")


def test_batched_scores_equal_unpadded_reference(tiny):
    model, tokenizer = tiny
    got = score_pairs(model, tokenizer, PAIRS, batch_size=3)
    for (prompt, response), score in zip(PAIRS, got):
        assert score == pytest.approx(_reference_score(model, tokenizer, prompt, response), abs=1e-4)


def _lines(cache_dir):
    return sum(len(f.read_text().splitlines()) - 1 for f in cache_dir.glob("*.jsonl"))


def test_cache_reuses_unchanged_and_rescores_changed_examples(tmp_path, tiny):
    first = score_dataset(PAIRS, ["tiny-llama"], tmp_path, batch_size=2)
    assert _lines(tmp_path) == len(PAIRS)
    edited = list(PAIRS)
    edited[1] = ("Convert 2 km to m.", "200")  # a corrected/corrupted response must not reuse the old score
    second = score_dataset(edited, ["tiny-llama"], tmp_path, batch_size=2)
    assert _lines(tmp_path) == len(PAIRS) + 1  # exactly one new example scored
    assert second.examples_per_second["tiny-llama"] is not None
    model, tokenizer = tiny
    assert second.reference[1] == pytest.approx(_reference_score(model, tokenizer, *edited[1]), abs=1e-4)
    assert second.reference[1] != pytest.approx(first.reference[1], abs=1e-3)
    assert [second.reference[i] for i in (0, 2, 3, 4)] == [first.reference[i] for i in (0, 2, 3, 4)]
    third = score_dataset(PAIRS, ["tiny-llama"], tmp_path)
    assert third.examples_per_second["tiny-llama"] is None  # all from cache, model not even loaded
    assert third.reference == first.reference


def test_scores_file_refuses_other_data(tmp_path):
    scores = score_dataset(PAIRS, ["tiny-llama"], tmp_path / "cache")
    path = scores.save(tmp_path / "scores.json")
    loaded = AlignedScores.load(path)
    loaded.check_matches(PAIRS)
    with pytest.raises(UserError, match="computed for other data") as err:
        loaded.check_matches(PAIRS[:-1] + [("Say hi.", "hello")])
    assert "\n" not in str(err.value)


def test_interrupted_run_resumes(tmp_path, tiny, monkeypatch):
    full = score_dataset(PAIRS, ["tiny-llama"], tmp_path / "a", batch_size=2).reference
    calls = {"n": 0}
    real = poft_scoring.append_cache

    def crash_after_first_batch(*args):
        real(*args)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(poft_scoring, "append_cache", crash_after_first_batch)
    with pytest.raises(KeyboardInterrupt):
        score_dataset(PAIRS, ["tiny-llama"], tmp_path / "b", batch_size=2)
    monkeypatch.setattr(poft_scoring, "append_cache", real)
    cache = next((tmp_path / "b").glob("*.jsonl"))
    with open(cache, "a") as handle:
        handle.write('{"key": "torn')  # a write cut off mid-line is ignored, not fatal
    assert _lines(tmp_path / "b") == 3
    resumed = score_dataset(PAIRS, ["tiny-llama"], tmp_path / "b", batch_size=2)
    assert resumed.reference == pytest.approx(full, abs=1e-5)
    assert sum(1 for line in cache.read_text().splitlines()[1:] if line.endswith("}")) == len(PAIRS)


def test_cache_of_another_model_is_refused(tmp_path):
    score_dataset(PAIRS[:1], ["tiny-llama"], tmp_path)
    cache = next(tmp_path.glob("*.jsonl"))
    lines = cache.read_text().splitlines()
    header = json.loads(lines[0])
    header["header"]["model"] = "something-else"
    cache.write_text("\n".join([json.dumps(header)] + lines[1:]) + "\n")
    with pytest.raises(UserError, match="another model"):
        score_dataset(PAIRS[:1], ["tiny-llama"], tmp_path)


def test_unloadable_aligned_model_is_one_line(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="aligned model .* cannot be loaded") as err:
        score_dataset(PAIRS, [str(broken)], tmp_path / "cache")
    assert "\n" not in str(err.value)


def test_empty_response_is_refused_before_scoring(tmp_path):
    from tunelab.align.poft.loss import validate_examples

    with pytest.raises(UserError, match="empty response"):
        validate_examples([{"prompt": "p", "response": ""}])
