"""SearchValue's persistent index: every distinct short text value of the database in an SQLite FTS5 table.

Built once per database and cached in a cache folder, never beside the user's database (that folder may be
read-only, and is not ours to write): `$TUNELAB_CACHE/text2sql/value-index/` (default `~/.cache/tunelab/...`), or
the folder `index_dir` / `$TUNELAB_T2S_INDEX_DIR` names. The file is named after the database's stable identity (the
resolved file path; for a server, the server, database and role) and records the full identity it was built from
(file: path + size + mtime + inode; PostgreSQL: server, database, and a data version from the tables' modification
counters); an index whose identity no longer matches is rebuilt, never used. FTS5's `unicode61 remove_diacritics 2`
tokenizer folds case and accents; ranking is FTS5's BM25. A query with no hit retries with the closest indexed
words (a fuzzy fallback for typos: rapidfuzz's normalized Indel similarity over candidates of similar length that
share the first letter or the last two).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import sqlite3
import time
import unicodedata
from pathlib import Path

from tunelab.io import remove_stale_pid_temps
from tunelab.progress import track
from tunelab.text2sql.db import Database
from tunelab.text2sql.schema import Schema

INDEX_VERSION = 1
TEXT_TYPES = ("CHAR", "TEXT", "CLOB", "STRING", "VARCHAR")
MAX_VALUES_PER_COLUMN = 5000
MAX_FUZZY_CANDIDATES = 20000
FUZZY_CUTOFF = 75.0  # rapidfuzz ratio, 0-100 (the former difflib cutoff 0.75)
INDEX_DIR_ENV = "TUNELAB_T2S_INDEX_DIR"
MAX_VALUE_CHARS = 80  # longer values are free text: searching them is not what SearchValue is for
TOKEN = re.compile(r"\w+", re.UNICODE)


@dataclasses.dataclass(frozen=True)
class ValueHit:
    table: str
    column: str
    value: str
    score: float


def fold(text: str) -> str:
    """Lower case without accents (what FTS5's tokenizer compares)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def fts_query(words: list[str], prefix_last: bool = True) -> str:
    """An FTS5 OR-query of quoted words (quoting keeps user text from being read as FTS syntax)."""
    quoted = ['"' + w.replace('"', '""') + '"' for w in words]
    if prefix_last and quoted:
        quoted[-1] += "*"
    return " OR ".join(quoted)


def vocab_keys(term: str) -> tuple[str, str]:
    return "^" + term[:1], term[-2:] + "$"


def index_folder(index_dir: str | Path | None = None) -> Path:
    """Where value indexes live: `index_dir`, else `$TUNELAB_T2S_INDEX_DIR`, else the tunelab cache."""
    if index_dir is None:
        index_dir = os.environ.get(INDEX_DIR_ENV) or None
    if index_dir is None:
        root = Path(os.environ.get("TUNELAB_CACHE") or Path.home() / ".cache" / "tunelab")
        index_dir = root / "text2sql" / "value-index"
    return Path(index_dir).expanduser()


def default_index_path(db: Database | str | Path, index_dir: str | Path | None = None) -> Path:
    """The index file of a database (or of a database file's path), in `index_folder(index_dir)`: named after
    the database's stable identity; whether the file is current is checked against its full identity on open."""
    if isinstance(db, Database):
        name, key = db.index_key()
    else:
        name, key = Path(db).name, str(Path(db).resolve())
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)[:80] or "db"
    return index_folder(index_dir) / f"{safe}.{digest}.t2s-index.sqlite"


def text_columns(schema: Schema) -> list[tuple[str, str]]:
    out = []
    for table in schema.tables.values():
        for column in table.columns:
            if any(t in column.type for t in TEXT_TYPES) or column.type == "":
                out.append((table.name, column.name))
    return out


class ValueIndex:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        self._buckets: dict[tuple[str, int], list[str]] | None = None

    @classmethod
    def open_or_build(cls, db: Database, schema: Schema, path: Path | None = None, progress: bool = True,
                      index_dir: str | Path | None = None) -> "ValueIndex":
        """The index at `path` (default: `default_index_path(db, index_dir)`), (re)built unless it was built from
        the database as it is now."""
        path = Path(path) if path else default_index_path(db, index_dir)
        if not _is_current(path, db):
            build_value_index(db, schema, path, progress=progress)
        return cls(path)

    def meta(self) -> dict:
        return json.loads(self.conn.execute("SELECT value FROM meta WHERE key = 'info'").fetchone()[0])

    def search(self, query: str, tables: list[str] | None = None, columns: list[str] | None = None,
               k: int = 5, candidates: int = 50) -> list[ValueHit]:
        words = TOKEN.findall(fold(query))
        if not words:
            return []
        hits = self._match(words, tables, columns, candidates)
        if not hits:
            close = [self._closest(w) for w in words]
            if any(close):
                hits = self._match([c or w for c, w in zip(close, words)], tables, columns, candidates, prefix=False)
        wanted = fold(query).strip()
        hits.sort(key=lambda h: (fold(h.value).strip() != wanted, -h.score))  # exact (folded) matches first
        return hits[:k]

    def _match(self, words, tables, columns, candidates, prefix=True) -> list[ValueHit]:
        sql = "SELECT tbl, col, value, -bm25(value_fts) FROM value_fts WHERE value_fts MATCH ?"
        params: list = [fts_query(words, prefix_last=prefix)]
        for name, allowed in (("tbl", tables), ("col", columns)):
            if allowed:
                sql += f" AND lower({name}) IN ({', '.join('?' * len(allowed))})"
                params.extend(a.lower() for a in allowed)
        sql += f" ORDER BY rank LIMIT {int(candidates)}"
        try:
            rows = self.conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:
            return []
        return [ValueHit(t, c, v, float(s)) for t, c, v, s in rows]

    def _closest(self, word: str) -> str | None:
        """The closest indexed word (rapidfuzz ratio >= 75). Candidates share the first letter or the last two
        letters (one typo rarely hits both ends) and are within two characters of the word's length: the vocabulary
        is bucketed by (end, length) once, so a query scores a few buckets, in C, not the vocabulary in Python."""
        from rapidfuzz import fuzz, process

        if self._buckets is None:
            buckets: dict[tuple[str, int], list[str]] = {}
            for (term,) in self.conn.execute("SELECT term FROM value_vocab ORDER BY term"):
                for key in vocab_keys(term):
                    buckets.setdefault((key, len(term)), []).append(term)
            self._buckets = buckets
        seen: set[str] = set()
        candidates: list[str] = []
        for delta in (0, -1, 1, -2, 2):  # nearest lengths first, so a cap keeps the likeliest candidates
            for key in vocab_keys(word):
                for term in self._buckets.get((key, len(word) + delta), ()):
                    if term not in seen:
                        seen.add(term)
                        candidates.append(term)
            if len(candidates) >= MAX_FUZZY_CANDIDATES:
                break
        if not candidates:
            return None
        found = process.extractOne(word, candidates[:MAX_FUZZY_CANDIDATES], scorer=fuzz.ratio,
                                   score_cutoff=FUZZY_CUTOFF)
        return found[0] if found else None

    def close(self) -> None:
        self.conn.close()


def _is_current(path: Path, db: Database) -> bool:
    if not path.is_file():
        return False
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            info = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'info'").fetchone()[0])
        finally:
            conn.close()
    except (sqlite3.Error, TypeError, ValueError):
        return False
    return info.get("version") == INDEX_VERSION and info.get("database") == db.identity()


def build_value_index(db: Database, schema: Schema, path: Path, progress: bool = True) -> dict:
    """Write the index to `path` atomically; returns its info (counts, build time)."""
    start = time.perf_counter()
    identity = db.identity()  # taken first: a write during the build leaves the index stale, not trusted
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_pid_temps(path.parent, f".{path.name}")  # what a killed build left (kills run no cleanup)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    conn = sqlite3.connect(tmp)
    total = 0
    columns = text_columns(schema)
    try:
        conn.execute("CREATE VIRTUAL TABLE value_fts USING fts5(value, tbl UNINDEXED, col UNINDEXED, "
                     "tokenize = 'unicode61 remove_diacritics 2')")
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        items = track(columns, "indexing values", total=len(columns)) if progress else columns
        for table, column in items:
            values = _distinct_short_values(db, table, column)
            conn.executemany("INSERT INTO value_fts (value, tbl, col) VALUES (?, ?, ?)",
                             [(v, table, column) for v in values])
            total += len(values)
        conn.execute("CREATE VIRTUAL TABLE value_vocab USING fts5vocab(value_fts, 'row')")
        info = {"version": INDEX_VERSION, "database": identity, "columns": len(columns), "values": total,
                "build_s": time.perf_counter() - start}
        conn.execute("INSERT INTO meta VALUES ('info', ?)", (json.dumps(info),))
        conn.commit()
        conn.execute("INSERT INTO value_fts(value_fts) VALUES ('optimize')")
        conn.commit()
    except BaseException:
        conn.close()
        remove_stale_pid_temps(path.parent, f".{path.name}")  # ours, now that the build failed
        raise
    conn.close()
    os.replace(tmp, path)
    return info


def _distinct_short_values(db: Database, table: str, column: str) -> list[str]:
    q = db.quote
    sql = (f"SELECT DISTINCT {q(column)} FROM {q(table)} WHERE {q(column)} IS NOT NULL "
           f"AND length(CAST({q(column)} AS TEXT)) <= {MAX_VALUE_CHARS} LIMIT {MAX_VALUES_PER_COLUMN}")
    return [r[0] for r in db.query(sql, timeout_s=120) if isinstance(r[0], str) and r[0].strip()]
