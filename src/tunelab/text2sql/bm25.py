"""Okapi BM25 over small in-memory corpora (SearchColumn's fallback when no encoder is available)."""

from __future__ import annotations

import math
import re
from collections import Counter

WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-case words, with snake_case and camelCase split (`o_custkey` -> o, custkey; `firstName` -> first, name)."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    return WORD.findall(spaced.lower())


def bm25_scores(query: list[str], documents: list[list[str]], k1: float = 1.5, b: float = 0.75) -> list[float]:
    """BM25 score of each tokenised document for the tokenised query (Robertson-Sparck Jones idf, floored at 0)."""
    n = len(documents)
    if n == 0:
        return []
    avg_len = sum(len(d) for d in documents) / n or 1.0
    df = Counter(t for d in documents for t in set(d))
    idf = {t: max(0.0, math.log((n - df[t] + 0.5) / (df[t] + 0.5) + 1.0)) for t in set(query)}
    scores = []
    for doc in documents:
        tf = Counter(doc)
        norm = k1 * (1 - b + b * len(doc) / avg_len)
        scores.append(sum(idf[t] * tf[t] * (k1 + 1) / (tf[t] + norm) for t in query if t in tf))
    return scores
