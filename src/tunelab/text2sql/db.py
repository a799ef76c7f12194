"""Read-only database access for SQLite and DuckDB behind one interface, with safety enforced by the engine.

SQLite: opened `mode=ro`, `PRAGMA query_only`, and an authorizer that whitelists reading (SELECT, column reads,
functions other than load_extension, recursive CTEs, a few read-only pragmas); everything else (writes, ATTACH,
VACUUM INTO, pragma writes) is denied by SQLite itself. DuckDB: `read_only=True`, external access (files, COPY,
ATTACH, extension install/load) disabled and the configuration locked. Both: one statement per call, a per-query
wall-clock timeout (SQLite progress handler / DuckDB interrupt) and a row cap that still reports the total count.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from tunelab.errors import UserError

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_ROWS = 100

SQLITE_MAGIC = b"SQLite format 3\x00"
DUCKDB_MAGIC = b"DUCK"  # at byte offset 8 of a DuckDB file

# Read-only pragmas introspection (and curious users) may call; any pragma with a write form is left out.
READ_PRAGMAS = frozenset({"table_info", "table_xinfo", "foreign_key_list", "index_list", "index_info",
                          "index_xinfo", "database_list", "collation_list", "function_list"})
FORBIDDEN_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"})


class SQLError(Exception):
    """A query that could not run. `kind` is "refused" (safety), "timeout" or "error" (engine error)."""

    def __init__(self, kind: str, message: str):
        super().__init__(" ".join(str(message).split()))
        self.kind = kind


@dataclasses.dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]
    total_rows: int  # rows the query produced, even beyond the cap
    truncated: bool
    elapsed_s: float


@dataclasses.dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str
    primary_key: bool = False


@dataclasses.dataclass(frozen=True)
class DeclaredForeignKey:
    table: str
    column: str
    ref_table: str
    ref_column: str


def detect_engine(path: str | Path) -> str:
    """"sqlite" or "duckdb" from the file header; UserError for a missing or unsupported file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"database '{path}' does not exist")
    if not path.is_file():
        raise UserError(f"database '{path}' is not a file")
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head[8:12] == DUCKDB_MAGIC:
        return "duckdb"
    raise UserError(f"'{path}' is neither a SQLite nor a DuckDB database file")


def open_database(path: str | Path, memory_limit: str = "2GB") -> "Database":
    engine = detect_engine(path)
    return SQLiteDatabase(path) if engine == "sqlite" else DuckDBDatabase(path, memory_limit=memory_limit)


def split_statements(sql: str, dialect: str) -> list[str] | None:
    """Statements in `sql` as sqlglot parses them, or None when sqlglot cannot parse it (the engine decides then)."""
    import logging

    import sqlglot
    from sqlglot.errors import ParseError, TokenError

    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # "falling back to Command" warnings are expected here
    try:
        parsed = sqlglot.parse(sql, read=dialect)
    except (ParseError, TokenError, ValueError):
        return None
    return [p.sql(dialect=dialect) for p in parsed if p is not None]


class Database:
    """Common logic; subclasses provide `_open`, `_run_raw` and introspection."""

    dialect = ""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # ------------------------------------------------------------------ public
    def execute(self, sql: str, timeout_s: float = DEFAULT_TIMEOUT_S, max_rows: int | None = DEFAULT_MAX_ROWS,
                count_all: bool = True) -> QueryResult:
        """Run ONE read-only statement. Rows beyond `max_rows` are counted (within the timeout) but not kept.
        The timeout covers the whole call, parsing included."""
        entered = time.monotonic()
        sql = (sql or "").strip().rstrip(";").strip()
        if not sql:
            raise SQLError("refused", "empty SQL")
        statements = split_statements(sql, self.dialect)
        if statements is not None and len(statements) > 1:
            raise SQLError("refused", f"one statement per call ({len(statements)} given)")
        remaining = max(timeout_s - (time.monotonic() - entered), 1e-3)
        try:
            return self._run(sql, (), remaining, max_rows, count_all, user=True)
        except SQLError as err:
            if err.kind == "timeout":
                raise SQLError("timeout", f"query exceeded the {timeout_s:g} s timeout") from err
            raise

    def query(self, sql: str, params: tuple = (), timeout_s: float = DEFAULT_TIMEOUT_S) -> list[tuple]:
        """Internal read queries (introspection, indexing): same read-only connection, all rows."""
        return self._run(sql, params, timeout_s, None, True, user=False).rows

    def quote(self, identifier: str) -> str:
        return '"' + identifier.replace('"', '""') + '"'

    def quote_if_needed(self, identifier: str) -> str:
        """Plain names stay plain (readable prompts); others are quoted."""
        simple = identifier.replace("_", "a").isalnum() and not identifier[:1].isdigit() and identifier.isascii()
        return identifier if simple else self.quote(identifier)

    def row_count(self, table: str) -> int:
        return int(self.query(f"SELECT count(*) FROM {self.quote(table)}")[0][0])

    def identity(self) -> dict:
        """What a cache beside the database is keyed on: the file's identity and modification time."""
        stat = self.path.stat()
        return {"path": str(self.path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "inode": stat.st_ino}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ engine specific
    def _run(self, sql, params, timeout_s, max_rows, count_all, user) -> QueryResult:
        raise NotImplementedError

    def tables(self) -> list[str]:
        raise NotImplementedError

    def columns(self, table: str) -> list[ColumnInfo]:
        raise NotImplementedError

    def declared_foreign_keys(self) -> list[DeclaredForeignKey]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def _drain(cursor_fetchmany, max_rows: int | None, count_all: bool, deadline: float,
           timeout_s: float) -> tuple[list[tuple], int, bool]:
    """Keep at most `max_rows` rows while counting all of them; the deadline is checked between chunks too."""
    kept: list[tuple] = []
    total = 0
    while True:
        if time.monotonic() > deadline:
            raise SQLError("timeout", f"query exceeded the {timeout_s:g} s timeout")
        chunk = cursor_fetchmany(1000)
        if not chunk:
            break
        total += len(chunk)
        if max_rows is None or len(kept) < max_rows:
            room = len(chunk) if max_rows is None else max_rows - len(kept)
            kept.extend(tuple(r) for r in chunk[:room])
        elif not count_all:
            break
    truncated = max_rows is not None and total > len(kept)
    return kept, total, truncated


# ====================================================================== SQLite

def sqlite_authorizer(action: int, arg1, arg2, dbname, source) -> int:
    """Allow reading only. Called by SQLite for every operation a statement would perform."""
    if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_DENY if (arg2 or "").lower() in FORBIDDEN_FUNCTIONS else sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in READ_PRAGMAS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


class SQLiteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: str | Path):
        super().__init__(path)
        uri = self.path.resolve().as_uri() + "?mode=ro"
        try:
            self.conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self.conn.execute("PRAGMA query_only = ON")
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as err:
            raise UserError(f"cannot open SQLite database '{path}': {err}") from err
        self.conn.set_authorizer(sqlite_authorizer)
        self._lock = threading.Lock()

    def _run(self, sql, params, timeout_s, max_rows, count_all, user) -> QueryResult:
        deadline = time.monotonic() + timeout_s
        timed_out = [False]

        def progress() -> int:
            if time.monotonic() > deadline:
                timed_out[0] = True
                return 1  # non-zero aborts the statement
            return 0

        start = time.perf_counter()
        with self._lock:
            self.conn.set_progress_handler(progress, 1000)
            try:
                cursor = self.conn.execute(sql, params)
                columns = [d[0] for d in cursor.description or []]
                rows, total, truncated = _drain(cursor.fetchmany, max_rows, count_all, deadline, timeout_s)
            except sqlite3.Error as err:
                if timed_out[0]:
                    raise SQLError("timeout", f"query exceeded the {timeout_s:g} s timeout") from err
                message = str(err)
                if "authoriz" in message or "readonly" in message or "one statement" in message:
                    raise SQLError("refused", f"refused by the engine: {message}") from err
                raise SQLError("error", message) from err
            except (ValueError, OverflowError) as err:
                raise SQLError("error", str(err)) from err
            finally:
                self.conn.set_progress_handler(None, 0)
        return QueryResult(columns, rows, total, truncated, time.perf_counter() - start)

    def tables(self) -> list[str]:
        rows = self.query("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                          "AND name NOT LIKE 'sqlite_%' ORDER BY name")
        return [r[0] for r in rows]

    def columns(self, table: str) -> list[ColumnInfo]:
        rows = self.query(f"PRAGMA table_info({self.quote(table)})")
        return [ColumnInfo(name=r[1], type=(r[2] or "").upper(), primary_key=bool(r[5])) for r in rows]

    def declared_foreign_keys(self) -> list[DeclaredForeignKey]:
        keys = []
        for table in self.tables():
            for row in self.query(f"PRAGMA foreign_key_list({self.quote(table)})"):
                ref_table, column, ref_column = row[2], row[3], row[4]
                if ref_column is None:  # REFERENCES t without a column means t's primary key
                    pks = [c.name for c in self.columns(ref_table) if c.primary_key]
                    ref_column = pks[0] if pks else column
                keys.append(DeclaredForeignKey(table, column, ref_table, ref_column))
        return keys

    def close(self) -> None:
        self.conn.close()


# ====================================================================== DuckDB

class DuckDBDatabase(Database):
    dialect = "duckdb"

    def __init__(self, path: str | Path, memory_limit: str = "2GB"):
        super().__init__(path)
        import duckdb

        config = {
            "enable_external_access": False,  # no files: COPY, ATTACH, read_csv, INSTALL/LOAD are refused
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "allow_unsigned_extensions": False,
            "memory_limit": memory_limit,
            "lock_configuration": True,  # SET cannot undo any of the above
        }
        try:
            self.conn = duckdb.connect(str(self.path), read_only=True, config=config)
        except duckdb.Error as err:
            raise UserError(f"cannot open DuckDB database '{path}': {str(err).splitlines()[0]}") from err
        self._lock = threading.Lock()

    def _run(self, sql, params, timeout_s, max_rows, count_all, user) -> QueryResult:
        import duckdb

        start = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        with self._lock:
            timer = threading.Timer(timeout_s, self.conn.interrupt)
            timer.daemon = True
            timer.start()
            try:
                if user:  # the engine's own parser: exactly one statement, and a query (not even a temp table)
                    statements = self.conn.extract_statements(sql)
                    if len(statements) != 1:
                        raise SQLError("refused", f"one statement per call ({len(statements)} given)")
                    if statements[0].type != duckdb.StatementType.SELECT:
                        raise SQLError("refused", f"only queries may run ({statements[0].type.name} refused)")
                cursor = self.conn.execute(sql, list(params) if params else None)
                columns = [d[0] for d in cursor.description or []]
                rows, total, truncated = _drain(cursor.fetchmany, max_rows, count_all, deadline, timeout_s)
            except duckdb.InterruptException as err:
                raise SQLError("timeout", f"query exceeded the {timeout_s:g} s timeout") from err
            except (duckdb.PermissionException, duckdb.InvalidInputException) as err:
                message = str(err).splitlines()[0]
                if "read-only" in message or "Permission" in message or "locked" in message.lower():
                    raise SQLError("refused", f"refused by the engine: {message}") from err
                raise SQLError("error", message) from err
            except duckdb.Error as err:
                message = str(err).splitlines()[0]
                kind = "refused" if "read-only" in message or "read only" in message else "error"
                raise SQLError(kind, message) from err
            finally:
                timer.cancel()
        return QueryResult(columns, rows, total, truncated, time.perf_counter() - start)

    def tables(self) -> list[str]:
        rows = self.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
                          "ORDER BY table_name")
        return [r[0] for r in rows]

    def columns(self, table: str) -> list[ColumnInfo]:
        pks = set()
        for (names,) in self.query("SELECT constraint_column_names FROM duckdb_constraints() "
                                   "WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'", (table,)):
            pks.update(names)
        rows = self.query("SELECT column_name, data_type FROM information_schema.columns "
                          "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position", (table,))
        return [ColumnInfo(name=r[0], type=str(r[1]).upper(), primary_key=r[0] in pks) for r in rows]

    def declared_foreign_keys(self) -> list[DeclaredForeignKey]:
        rows = self.query("SELECT table_name, constraint_column_names, referenced_table, referenced_column_names "
                          "FROM duckdb_constraints() WHERE constraint_type = 'FOREIGN KEY'")
        keys = []
        for table, cols, ref_table, ref_cols in rows:
            keys.extend(DeclaredForeignKey(table, c, ref_table, r) for c, r in zip(cols, ref_cols or cols))
        return keys

    def close(self) -> None:
        self.conn.close()


def format_rows(result: QueryResult, max_chars: int = 2000) -> str:
    """A compact text rendering for an LLM observation: header, rows, and how many there were in total."""
    lines = [" | ".join(result.columns)]
    for row in result.rows:
        lines.append(" | ".join(_cell(v) for v in row))
    text = "\n".join(lines)
    if len(text) > max_chars:
        text = text[:max_chars] + " ..."
    more = f" (showing {len(result.rows)})" if result.truncated else ""
    return f"{text}\n[{result.total_rows} row{'s' if result.total_rows != 1 else ''}{more}]"


def sql_literal(value: Any) -> str:
    """A value as an SQL literal (what the model should write): 'text' with quotes doubled, numbers and dates
    plainly, NULL; never a Python repr such as Decimal('9.5') or datetime.date(...)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float, decimal.Decimal)):
        return f"{value:.6g}" if isinstance(value, float) else str(value)
    if isinstance(value, dt.datetime):
        return f"'{value.isoformat(sep=' ')}'"
    if isinstance(value, (dt.date, dt.time)):
        return f"'{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return sql_literal(value) if value != value.strip() else value  # trailing spaces must stay visible
    return str(value)
