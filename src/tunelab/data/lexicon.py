"""A keyword-lexicon task: texts whose label is the class of an invented word they mention.

Each data seed invents `n_keywords` pronounceable non-words, gives each a random class, and writes sentences that
mention one keyword in everyday frames. Training sentences use one set of frames, held-out sentences another, so a
model must learn which class each keyword belongs to (new knowledge a pretrained encoder does not have) and apply
it in unseen contexts. The number of keywords sets how much there is to learn: the regime in which a low-rank
adapter can fall behind full fine-tuning.
"""

from __future__ import annotations

import numpy as np

from tunelab.data.labeled import LabeledTextDataset

TRAIN_FRAMES = ("the report about {} was filed on tuesday", "we met {} near the old station",
                "nobody expected {} to arrive so early", "a short note on {} came with the parcel",
                "they discussed {} over a late dinner", "my friend keeps talking about {}",
                "the museum shows a picture of {} today", "{} was mentioned twice in the letter")
HELD_OUT_FRAMES = ("people in town still remember {}", "she wrote {} on the back of the ticket",
                   "an old map marks {} in red", "the teacher asked about {} again")
CONSONANTS, VOWELS = "bcdfghjklmnprstvz", "aeiou"


def invent_words(n: int, rng: np.random.Generator) -> list[str]:
    """n distinct non-words of 2-3 consonant-vowel syllables, in random order."""
    if n > 50_000:
        raise ValueError("at most 50,000 keywords")
    words: set[str] = set()
    while len(words) < n:
        syllables = rng.integers(2, 4)
        words.add("".join(rng.choice(list(CONSONANTS)) + rng.choice(list(VOWELS)) for _ in range(syllables)))
    out = sorted(words)
    rng.shuffle(out)
    return out


def _sentences(words: list[str], classes: np.ndarray, frames: tuple[str, ...], per_keyword: int,
               rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    for word, label in zip(words, classes):
        for frame in rng.choice(len(frames), per_keyword, replace=False):
            texts.append(frames[frame].format(word))
            labels.append(int(label))
    return texts, np.asarray(labels)


def keyword_lexicon(n_keywords: int, n_classes: int, seed: int, train_per_keyword: int = 3,
                    held_out_per_keyword: int = 1) -> tuple[LabeledTextDataset, LabeledTextDataset]:
    """(train, held out) for one data seed: the same keywords, in training frames and in held-out frames."""
    if train_per_keyword > len(TRAIN_FRAMES) or held_out_per_keyword > len(HELD_OUT_FRAMES):
        raise ValueError(f"at most {len(TRAIN_FRAMES)} training and {len(HELD_OUT_FRAMES)} held-out frames per keyword")
    rng = np.random.default_rng(seed)
    words = invent_words(n_keywords, rng)
    classes = rng.integers(0, n_classes, n_keywords)
    names = [f"class {i}" for i in range(n_classes)]
    train = _sentences(words, classes, TRAIN_FRAMES, train_per_keyword, rng)
    held_out = _sentences(words, classes, HELD_OUT_FRAMES, held_out_per_keyword, rng)
    return (LabeledTextDataset(*train, names, f"keyword-lexicon-{seed}"),
            LabeledTextDataset(*held_out, names, f"keyword-lexicon-{seed}-held-out"))
