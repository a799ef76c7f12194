"""Schema introspection: tables, columns, primary keys, row counts, and foreign keys (declared, or inferred).

Many analytical databases declare no foreign keys (TPC-H and TPC-DS in DuckDB declare none). For those, a foreign
key is inferred when a column's name matches a unique key column of another table (`o_custkey` -> `c_custkey`,
`ss_item_sk` -> `i_item_sk`, `customer_id` -> `customer.id`) AND a sample of its values is contained in that key.
Inferred keys are marked `inferred=True`.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path

from tunelab.text2sql.db import ColumnInfo, Database

KEY_SUFFIXES = ("id", "key", "sk", "code", "no", "num")
CONTAINMENT_SAMPLE = 2000


@dataclasses.dataclass(frozen=True)
class ForeignKey:
    table: str
    column: str
    ref_table: str
    ref_column: str
    inferred: bool = False

    def render(self) -> str:
        return f"{self.table}.{self.column} -> {self.ref_table}.{self.ref_column}" + (" (inferred)" if self.inferred else "")


@dataclasses.dataclass
class Table:
    name: str
    columns: list[ColumnInfo]
    row_count: int

    @property
    def primary_key(self) -> list[str]:
        return [c.name for c in self.columns if c.primary_key]


@dataclasses.dataclass
class Schema:
    dialect: str
    tables: dict[str, Table]
    foreign_keys: list[ForeignKey]
    descriptions: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)

    def column_count(self) -> int:
        return sum(len(t.columns) for t in self.tables.values())

    def has_table(self, name: str) -> str | None:
        """The table's stored name, matched case-insensitively."""
        return {t.lower(): t for t in self.tables}.get(name.lower())

    def find_column(self, name: str) -> list[tuple[str, str]]:
        """(table, column) pairs for `column` or `table.column`, case-insensitive."""
        wanted = name.strip().strip('"`').lower()
        table_part, _, column_part = wanted.rpartition(".")
        hits = []
        for table in self.tables.values():
            if table_part and table.name.lower() != table_part.strip('"`'):
                continue
            hits.extend((table.name, c.name) for c in table.columns if c.name.lower() == column_part.strip('"`'))
        return hits


def introspect(db: Database, infer: bool = True, descriptions: dict | None = None) -> Schema:
    tables = {}
    for name in db.tables():
        tables[name] = Table(name=name, columns=db.columns(name), row_count=db.row_count(name))
    declared = [ForeignKey(k.table, k.column, k.ref_table, k.ref_column) for k in db.declared_foreign_keys()]
    schema = Schema(dialect=db.dialect, tables=tables, foreign_keys=declared,
                    descriptions=dict(descriptions or {}) or read_descriptions(db))
    if infer and not declared:
        schema.foreign_keys = infer_foreign_keys(db, schema)
    return schema


# ---------------------------------------------------------------------------- name matching (pure)

def stem(column: str) -> str:
    """The column name without a short table prefix: `o_custkey` -> `custkey`, `ss_item_sk` -> `item_sk`."""
    name = column.lower()
    head, sep, tail = name.partition("_")
    if sep and len(head) <= 3 and tail:
        return tail
    return name


def is_key_like(column: str) -> bool:
    name = column.lower()
    return name == "id" or any(name.endswith(s) for s in KEY_SUFFIXES)


def name_match_score(column: str, ref_table: str, ref_column: str) -> int:
    """How well `column` names the key `ref_table.ref_column`: 0 = no match, higher = more specific."""
    src, dst = stem(column), stem(ref_column)
    table = ref_table.lower()
    singular = table[:-1] if table.endswith("s") else table
    full = column.lower()
    if full in (f"{singular}_{ref_column.lower()}", f"{table}_{ref_column.lower()}", f"{singular}{ref_column.lower()}"):
        return 100
    if ref_column.lower() == "id":
        return 0  # a bare `id` matches only through the table name
    if src == dst:
        return 50 + len(dst)
    src_tokens, dst_tokens = src.split("_"), dst.split("_")
    if len(src_tokens) > len(dst_tokens) and src_tokens[-len(dst_tokens):] == dst_tokens:
        return 20 + len(dst)  # ss_sold_date_sk -> d_date_sk
    if len(src_tokens) == len(dst_tokens) and src_tokens[1:] == dst_tokens[1:]:
        prefix = ref_column.lower().partition("_")[0]
        if src_tokens[0] == prefix[:1] + dst_tokens[0]:
            return 15  # ss_cdemo_sk -> cd_demo_sk (table initial + word)
        if len(src_tokens[0]) >= 3 and dst_tokens[0].startswith(src_tokens[0]):
            return 10  # ss_addr_sk -> ca_address_sk (abbreviation)
    return 0


def candidate_pairs(schema: Schema, unique_keys: set[tuple[str, str]]) -> list[tuple[str, str, str, str, int]]:
    """(table, column, ref_table, ref_column, score), best-scoring targets per source column only."""
    pairs = []
    for table in schema.tables.values():
        for column in table.columns:
            if not is_key_like(column.name):
                continue
            scored = [(name_match_score(column.name, rt, rc), rt, rc) for rt, rc in unique_keys
                      if rt != table.name]
            scored = [s for s in scored if s[0] > 0]
            if not scored:
                continue
            best = max(s[0] for s in scored)
            pairs.extend((table.name, column.name, rt, rc, score) for score, rt, rc in scored if score == best)
    return pairs


# ---------------------------------------------------------------------------- inference (queries)

def unique_key_columns(db: Database, schema: Schema) -> set[tuple[str, str]]:
    keys = set()
    for table in schema.tables.values():
        declared = table.primary_key
        if len(declared) == 1:
            keys.add((table.name, declared[0]))
            continue
        for column in table.columns:
            if not is_key_like(column.name) or table.row_count == 0:
                continue
            col = db.quote(column.name)
            total, distinct = db.query(f"SELECT count({col}), count(DISTINCT {col}) FROM {db.quote(table.name)}")[0]
            if total == table.row_count and distinct == total:
                keys.add((table.name, column.name))
    return keys


def values_contained(db: Database, table: str, column: str, ref_table: str, ref_column: str) -> bool:
    q = db.quote
    sample = (f"SELECT {q(column)} AS v FROM {q(table)} WHERE {q(column)} IS NOT NULL LIMIT {CONTAINMENT_SAMPLE}")
    sql = (f"SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM {q(ref_table)} r "
           f"WHERE r.{q(ref_column)} = s.v)) FROM ({sample}) s")
    if db.dialect == "sqlite":
        sql = (f"SELECT count(*), sum(CASE WHEN NOT EXISTS (SELECT 1 FROM {q(ref_table)} r "
               f"WHERE r.{q(ref_column)} = s.v) THEN 1 ELSE 0 END) FROM ({sample}) s")
    present, missing = db.query(sql)[0]
    return present > 0 and (missing or 0) == 0


def infer_foreign_keys(db: Database, schema: Schema) -> list[ForeignKey]:
    keys = unique_key_columns(db, schema)
    inferred: list[ForeignKey] = []
    for table, column, ref_table, ref_column, _ in candidate_pairs(schema, keys):
        if (table, column) in keys:
            continue  # key-to-key links between surrogate keys are coincidences far more often than 1:1 tables
        if values_contained(db, table, column, ref_table, ref_column):
            inferred.append(ForeignKey(table, column, ref_table, ref_column, inferred=True))
    return inferred


# ---------------------------------------------------------------------------- descriptions

def read_descriptions(db: Database) -> dict[tuple[str, str], str]:
    """Column descriptions: BIRD's `database_description/<table>.csv` beside the file, or the engine's column
    comments (DuckDB, PostgreSQL)."""
    found: dict[tuple[str, str], str] = {}
    folder = db.path.parent / "database_description" if db.path is not None else None
    if folder is not None and folder.is_dir():
        for csv_path in sorted(folder.glob("*.csv")):
            found.update(_bird_description_file(csv_path))
    found.update(db.column_comments())
    if db.dialect == "duckdb":
        for table, column, comment in db.query("SELECT table_name, column_name, comment FROM duckdb_columns() "
                                               "WHERE comment IS NOT NULL AND schema_name = 'main'"):
            found[(table, column)] = comment
    return found


def _bird_description_file(path: Path) -> dict[tuple[str, str], str]:
    out = {}
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            with open(path, newline="", encoding=encoding) as handle:
                for row in csv.DictReader(handle):
                    row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
                    column = row.get("original_column_name")
                    if not column:
                        continue
                    parts = [row.get("column_description", ""), row.get("value_description", "")]
                    text = "; ".join(p for p in parts if p)
                    if text:
                        out[(path.stem, column)] = re.sub(r"\s+", " ", text)
            return out
        except UnicodeDecodeError:
            continue
    return out
