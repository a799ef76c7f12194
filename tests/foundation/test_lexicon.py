"""The keyword-lexicon task: labels follow the keyword, frames differ between training and held-out texts."""

from __future__ import annotations

import re

from tunelab.data.lexicon import HELD_OUT_FRAMES, TRAIN_FRAMES, keyword_lexicon


def _keyword(text: str, frames) -> str:
    for frame in frames:
        match = re.fullmatch(re.escape(frame).replace(r"\{\}", "(\\w+)"), text)
        if match:
            return match.group(1)
    raise AssertionError(f"{text!r} uses no known frame")


def test_labels_follow_keywords_and_frames_are_disjoint():
    train, held_out = keyword_lexicon(50, 7, seed=3)
    assert len(train) == 150 and len(held_out) == 50
    label_of = {}
    for text, label in zip(train.texts, train.labels):
        label_of.setdefault(_keyword(text, TRAIN_FRAMES), set()).add(int(label))
    assert len(label_of) == 50 and all(len(v) == 1 for v in label_of.values())  # one class per keyword
    for text, label in zip(held_out.texts, held_out.labels):
        assert label_of[_keyword(text, HELD_OUT_FRAMES)] == {int(label)}  # the same keywords, other frames
    assert len(set(train.labels.tolist())) > 3


def test_seeds_give_other_lexicons_and_the_same_seed_the_same():
    a, _ = keyword_lexicon(30, 5, seed=0)
    b, _ = keyword_lexicon(30, 5, seed=1)
    assert a.texts != b.texts
    assert keyword_lexicon(30, 5, seed=0)[0].texts == a.texts
