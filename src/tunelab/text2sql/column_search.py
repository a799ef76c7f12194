"""SearchColumn: rank columns by meaning, with their statistics.

Each column becomes the text "a column named {words of the name} in table {table} about {description}", embedded
with the embedded MiniLM sentence encoder (vectors cached in memory per schema); the query is embedded the same way
and columns are ranked by cosine similarity. Without an encoder, BM25 over the same texts ranks them. Columns whose
name equals a query word are always included.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tunelab.text2sql.bm25 import bm25_scores, tokenize
from tunelab.text2sql.db import Database, sql_literal
from tunelab.text2sql.schema import Schema

NUMERIC_TYPES = ("INT", "REAL", "FLOA", "DOUB", "DEC", "NUM", "HUGEINT", "BIGINT")
MAX_CATEGORIES = 50


@dataclasses.dataclass(frozen=True)
class ColumnHit:
    table: str
    column: str
    type: str
    score: float
    description: str = ""


def column_text(table: str, column: str, description: str = "") -> str:
    text = f"a column named {' '.join(tokenize(column))} in table {' '.join(tokenize(table))}"
    return text + (f" about {description}" if description else "")


class ColumnSearch:
    def __init__(self, schema: Schema, encoder=None):
        """`encoder`: a sentence_transformers model (dense ranking) or None (BM25)."""
        self.schema = schema
        self.encoder = encoder
        descriptions = {(t.lower(), c.lower()): d for (t, c), d in schema.descriptions.items()}
        self.entries = [(t.name, c.name, c.type, descriptions.get((t.name.lower(), c.name.lower()), ""))
                        for t in schema.tables.values() for c in t.columns]
        self.texts = [column_text(t, c, d) for t, c, _, d in self.entries]
        self._tokens = [tokenize(text) for text in self.texts]
        self._vectors = None
        if encoder is not None:
            self._vectors = self._embed(self.texts)

    @property
    def method(self) -> str:
        return "dense" if self.encoder is not None else "bm25"

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = self.encoder.encode(texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True,
                                      show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def scores(self, query: str) -> np.ndarray:
        if self._vectors is not None:
            return self._vectors @ self._embed([query])[0]
        return np.asarray(bm25_scores(tokenize(query), self._tokens), dtype=np.float64)

    def search(self, query: str, k: int = 5) -> list[ColumnHit]:
        scores = self.scores(query)
        order = list(np.argsort(-scores, kind="stable")[:k])
        words = {w.lower().strip('"`') for w in query.replace(",", " ").split()}
        words |= {query.strip().lower()}
        exact = [i for i, (t, c, _, _) in enumerate(self.entries) if c.lower() in words or f"{t}.{c}".lower() in words]
        chosen = exact + [int(i) for i in order if i not in exact][:max(0, k - len(exact))]
        return [ColumnHit(*self.entries[i][:3], float(scores[i]), self.entries[i][3]) for i in chosen]


def column_stats(db: Database, table: str, column: str, column_type: str, samples: int = 3) -> str:
    """Categorical values (<= 50 distinct), min/max/distinct for numbers, a few samples for text."""
    q = db.quote
    source = f"FROM {q(table)} WHERE {q(column)} IS NOT NULL"
    distinct = db.query(f"SELECT count(DISTINCT {q(column)}) {source}")[0][0]
    if distinct == 0:
        return "all NULL"
    if any(t in column_type.upper() for t in NUMERIC_TYPES):
        low, high = db.query(f"SELECT min({q(column)}), max({q(column)}) {source}")[0]
        return f"min {sql_literal(low)}, max {sql_literal(high)}, {distinct} distinct"
    if distinct <= MAX_CATEGORIES:
        values = [r[0] for r in db.query(f"SELECT DISTINCT {q(column)} {source} ORDER BY 1")]
        return f"{distinct} values: " + ", ".join(sql_literal(v) for v in values)
    values = [r[0] for r in db.query(f"SELECT DISTINCT {q(column)} {source} LIMIT {samples}")]
    return f"{distinct} distinct, e.g. " + ", ".join(sql_literal(v)[:60] for v in values)
