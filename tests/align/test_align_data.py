"""Bad preference data gives one-line UserErrors; groups are built as documented."""

import pytest

from tunelab.align.chat import tokenize_prompt_response
from tunelab.align.preference.data import choose_weak_negatives, collate_groups, normalize_records, tokenize_group
from tunelab.errors import UserError
from tunelab.models import load_tokenizer


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("tiny-llama")


@pytest.mark.parametrize("record, message", [
    ({"prompt": "p", "chosen": "c"}, "missing column"),
    ({"prompt": "p", "chosen": " ", "rejected": "r"}, "non-empty"),
    ({"prompt": "", "chosen": "c", "rejected": "r"}, "non-empty"),
    ({"prompt": "p", "chosen": "c", "rejected": ["r"]}, "fewer than ns=2"),
])
def test_bad_records(record, message):
    with pytest.raises(UserError, match=message):
        normalize_records([record], ns=2)


def test_prompt_longer_than_max_length(tok):
    ex = normalize_records([{"prompt": "word " * 200, "chosen": "c", "rejected": "r"}])[0]
    with pytest.raises(UserError, match="max_length"):
        tokenize_group(tok, ex, 1, [], max_length=64)


def test_group_layout_and_truncation(tok):
    ex = normalize_records([{"prompt": "hi", "chosen": "yes " * 50, "rejected": ["no", "never"]}], ns=2)[0]
    group = tokenize_group(tok, ex, 2, ["weak one"], max_length=48)
    prompt_ids, chosen_ids = tokenize_prompt_response(tok, "hi", "yes " * 50)
    assert group["prompt_ids"] == prompt_ids
    assert len(group["responses_ids"]) == 4
    assert group["responses_ids"][0] == chosen_ids[: 48 - len(prompt_ids)]  # documented keep-start truncation
    batch = collate_groups([group, group], tok.pad_token_id)
    assert batch["input_ids"].shape[0] == 8
    assert int(batch["completion_mask"][0].sum()) == 48 - len(prompt_ids)
    text = tok.decode(batch["input_ids"][2][batch["completion_mask"][2].bool()])
    assert text.startswith("never")


def test_weak_negatives_come_from_other_prompts():
    exs = normalize_records([{"prompt": f"p{i}", "chosen": f"c{i}", "rejected": f"r{i}"} for i in range(5)])
    weak = choose_weak_negatives(exs, 3, "both", seed=0)
    for i, row in enumerate(weak):
        assert len(row) == 3 and f"c{i}" not in row and f"r{i}" not in row
    assert weak == choose_weak_negatives(exs, 3, "both", seed=0)
    with pytest.raises(UserError):
        choose_weak_negatives(exs[:1], 1)


def test_weak_negatives_exclude_every_record_of_the_same_prompt():
    # multi-pair data (UltraFeedback style): several records share one prompt text
    records = [{"prompt": f"p{i % 3}", "chosen": f"c{i}", "rejected": [f"r{i}a", f"r{i}b"]} for i in range(6)]
    exs = normalize_records(records)
    for seed in range(5):
        for ex, row in zip(exs, choose_weak_negatives(exs, 4, "both", seed=seed)):
            own = {t for other in exs if other.prompt == ex.prompt for t in (other.chosen, *other.rejected)}
            assert not own & set(row)


def test_group_shares_one_prompt_when_a_response_starts_with_whitespace():
    # SmolLM2 merges the prompt's trailing "\n" with a response's leading "\n\n": that sequence splits earlier
    smol = load_tokenizer("smollm2-135m-instruct")
    ex = normalize_records([{"prompt": "Is it?", "chosen": "Yes.", "rejected": ["\n\nNo.", " Maybe."]}], ns=2)[0]
    group = tokenize_group(smol, ex, 2, ["Sure."], max_length=256)
    for response, response_ids in zip(["Yes.", "\n\nNo.", " Maybe.", "Sure."], group["responses_ids"]):
        full_ids = sum(tokenize_prompt_response(smol, "Is it?", response), [])
        assert group["prompt_ids"] + response_ids == full_ids
