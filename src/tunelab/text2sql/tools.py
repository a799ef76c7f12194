"""The agent's four tools (SearchColumn, SearchValue, FindShortestPath, ExecuteSQL) over one database.

Each tool returns an `Observation`: the text the LLM reads, whether the call succeeded, and for ExecuteSQL the
result. Tool failures (unknown table, SQL error, refused statement) are observations, never exceptions: the agent
reads them and corrects itself.
"""

from __future__ import annotations

import dataclasses

from tunelab.errors import UserError
from tunelab.text2sql.column_search import ColumnSearch, column_stats
from tunelab.text2sql.db import Database, QueryResult, SQLError, format_rows, sql_literal
from tunelab.text2sql.join_path import PathError, build_graph, shortest_path
from tunelab.text2sql.schema import Schema, introspect
from tunelab.text2sql.value_index import ValueIndex

TOOL_NAMES = ("SearchColumn", "SearchValue", "FindShortestPath", "ExecuteSQL", "Done")


@dataclasses.dataclass
class Observation:
    text: str
    ok: bool = True
    result: QueryResult | None = None


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise TypeError("expected a string or a list of strings")


def load_encoder_or_none(name: str | None):
    """The sentence encoder for SearchColumn, or None (BM25) when it is not installed."""
    if name is None:
        return None
    from tunelab.models import load_sentence_encoder

    try:
        return load_sentence_encoder(name)
    except UserError:
        return None


class Toolbox:
    def __init__(self, db: Database, schema: Schema | None = None, encoder="all-minilm-l6-v2",
                 index_path=None, timeout_s: float = 30.0, max_rows: int = 20, top_k: int = 5, index_dir=None):
        """`index_path`: SearchValue's index file; default one per database in `index_dir` (default the tunelab
        cache, or $TUNELAB_T2S_INDEX_DIR)."""
        self.db = db
        self.schema = schema or introspect(db)
        self.encoder = load_encoder_or_none(encoder) if isinstance(encoder, str) or encoder is None else encoder
        self.index_path = index_path
        self.index_dir = index_dir
        self.timeout_s = timeout_s
        self.max_rows = max_rows
        self.top_k = top_k
        self._columns: ColumnSearch | None = None
        self._values: ValueIndex | None = None
        self._graph = build_graph(self.schema)
        self._stats: dict[tuple[str, str], str] = {}

    # ------------------------------------------------------------------ lazily built indexes
    @property
    def column_search(self) -> ColumnSearch:
        if self._columns is None:
            self._columns = ColumnSearch(self.schema, self.encoder)
        return self._columns

    @property
    def value_index(self) -> ValueIndex:
        if self._values is None:
            self._values = ValueIndex.open_or_build(self.db, self.schema, self.index_path,
                                                   index_dir=self.index_dir)
        return self._values

    # ------------------------------------------------------------------ tools
    def search_column(self, query) -> Observation:
        queries = _as_list(query)
        if not queries or not all(q.strip() for q in queries):
            return Observation("SearchColumn needs a non-empty query", ok=False)
        blocks = []
        for q in queries:
            lines = [f"Columns for '{q}':"]
            for hit in self.column_search.search(q, k=self.top_k):
                stats = self._column_stats(hit.table, hit.column, hit.type)
                about = f" -- {hit.description}" if hit.description else ""
                lines.append(f"- {hit.table}.{hit.column} ({hit.type or 'untyped'}){about}; {stats}")
            blocks.append("\n".join(lines))
        return Observation("\n".join(blocks))

    def _column_stats(self, table: str, column: str, column_type: str) -> str:
        key = (table, column)
        if key not in self._stats:
            try:
                self._stats[key] = column_stats(self.db, table, column, column_type)
            except SQLError as err:
                self._stats[key] = f"statistics unavailable ({err})"
        return self._stats[key]

    def search_value(self, query, table=None, column=None) -> Observation:
        queries = _as_list(query)
        if not queries or not all(q.strip() for q in queries):
            return Observation("SearchValue needs a non-empty query", ok=False)
        tables, columns = _as_list(table), _as_list(column)
        unknown = [t for t in tables if not self.schema.has_table(t)]
        if unknown:
            return Observation(f"unknown table(s): {', '.join(unknown)}; tables are {', '.join(self.schema.tables)}",
                               ok=False)
        blocks = []
        for q in queries:
            hits = self.value_index.search(q, tables=tables or None, columns=columns or None, k=self.top_k)
            lines = [f"Values for '{q}':"] + [f"- {h.table}.{h.column} = {sql_literal(h.value)}" for h in hits]
            if not hits:
                lines.append("- no stored value matches")
            blocks.append("\n".join(lines))
        return Observation("\n".join(blocks))

    def join_path(self, start: str, end: str):
        """The shortest foreign-key path between two tables or columns (PathError when there is none)."""
        return shortest_path(self.schema, start, end, self._graph)

    def find_shortest_path(self, start: str, end: str) -> Observation:
        if not isinstance(start, str) or not isinstance(end, str):
            return Observation("FindShortestPath(start, end) takes two names (table or table.column)", ok=False)
        try:
            path = self.join_path(start, end)
        except PathError as err:
            return Observation(f"FindShortestPath failed: {err}", ok=False)
        return Observation(path.render() + "\n" + "\n".join(path.join_clauses(self.db.quote_if_needed)))

    def execute_sql(self, sql: str) -> Observation:
        if not isinstance(sql, str):
            return Observation("ExecuteSQL takes one SQL string", ok=False)
        try:
            result = self.db.execute(sql, timeout_s=self.timeout_s, max_rows=self.max_rows)
        except SQLError as err:
            return Observation(f"SQL {err.kind}: {err}", ok=False)
        return Observation(format_rows(result), ok=True, result=result)

    def close(self) -> None:
        if self._values is not None:
            self._values.close()
