"""Read-only database access for SQLite, DuckDB and PostgreSQL behind one interface, with safety enforced by the
engine.

SQLite: opened `mode=ro`, `PRAGMA query_only`, and an authorizer that whitelists reading (SELECT, column reads,
functions other than load_extension, recursive CTEs, a few read-only pragmas); everything else (writes, ATTACH,
VACUUM INTO, pragma writes) is denied by SQLite itself. DuckDB: `read_only=True`, external access (files, COPY,
ATTACH, extension install/load) disabled and the configuration locked. PostgreSQL (psycopg 3): every call is its
own `READ ONLY` transaction (and the session's `default_transaction_read_only` is on) that is always rolled back,
with `statement_timeout` as the budget; a user's SQL runs only as the query of a server-side cursor (`DECLARE ...
CURSOR FOR`, sent with the extended protocol), so the server itself accepts exactly one query: no DDL, COPY, SET or
second statement. Superusers and roles that may read or write server files or run programs are refused (a
SELECT-only role is what to connect with; see docs/text2sql-servers.md). All: one statement per call (each engine's
own parser counts), a per-query wall-clock timeout (SQLite progress handler / DuckDB interrupt / PostgreSQL cancel)
and a row cap that still reports the total count.

Budgets hold for any statement (within 1.2x the timeout + 0.2 s): SQL longer than `max_sql_bytes` (64 kB) is refused
before any parser sees it (an 878 kB expression cost 6 s in sqlglot and 26 s in DuckDB's planner); SQLite strings and
blobs are capped at `max_value_bytes` (`SQLITE_LIMIT_LENGTH`), so most single calls (`randomblob`) end soon after the
deadline; and a user's statement runs in a child process (`statement_worker.py`) that is killed past the deadline or
past `memory_limit`, because one huge call (DuckDB `repeat('x', 1500000000)`, SQLite `printf('%.*c', 2147483647,
'x')`) runs on through the engine's own interrupt and memory limit. Introspection runs in this process.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import hashlib
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from tunelab.errors import UserError

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_ROWS = 100
DEFAULT_MAX_SQL_BYTES = 64 * 1024  # a real query is a few kB; parsers are super-linear on long expressions
DEFAULT_MAX_VALUE_BYTES = 64 * 1024 * 1024  # one SQLite string/blob: building it takes ~0.1-0.2 s
SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
              "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}

SQLITE_MAGIC = b"SQLite format 3\x00"
DUCKDB_MAGIC = b"DUCK"  # at byte offset 8 of a DuckDB file

# Read-only pragmas introspection (and curious users) may call; any pragma with a write form is left out.
READ_PRAGMAS = frozenset({"table_info", "table_xinfo", "foreign_key_list", "index_list", "index_info",
                          "index_xinfo", "database_list", "collation_list", "function_list"})
FORBIDDEN_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"})
# What a SQLite user statement may start with; the authorizer decides the rest. Others (REINDEX or ANALYZE of
# something without an index) can be no-ops the authorizer never sees: refused here rather than shown as a success.
SQLITE_QUERY_KEYWORDS = frozenset({"select", "with", "values", "pragma", "explain"})
LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?(?:\*/|\Z))*", re.DOTALL)


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


POSTGRES_URL = re.compile(r"^postgres(ql)?:", re.IGNORECASE)


def is_postgres_url(target: str | Path) -> bool:
    """`postgresql://...` / `postgres://...` URLs, and a bare `postgresql:` (everything from the PG* variables)."""
    return isinstance(target, str) and bool(POSTGRES_URL.match(target.strip()))


def detect_engine(path: str | Path) -> str:
    """"postgres" for a PostgreSQL URL, else "sqlite" or "duckdb" from the file header; UserError for a missing or
    unsupported file."""
    if is_postgres_url(path):
        return "postgres"
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


def open_database(path: str | Path, memory_limit: str = "2GB", max_sql_bytes: int = DEFAULT_MAX_SQL_BYTES,
                  max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> "Database":
    """A SQLite or DuckDB file, or a PostgreSQL server (`postgresql://user@host:port/dbname`, `postgres://...`, or
    `postgresql:` alone for the PG* environment variables), opened read-only. `max_sql_bytes` caps the length of a
    user's statement; `max_value_bytes` one SQLite string or blob; `memory_limit` a statement's memory (DuckDB's
    own limit, and for both engines the size at which the statement's process is stopped)."""
    engine = detect_engine(path)
    if engine == "postgres":
        return PostgresDatabase(str(path).strip(), max_sql_bytes=max_sql_bytes)
    if engine == "sqlite":
        return SQLiteDatabase(path, max_sql_bytes=max_sql_bytes, max_value_bytes=max_value_bytes,
                              memory_limit=memory_limit)
    return DuckDBDatabase(path, memory_limit=memory_limit, max_sql_bytes=max_sql_bytes)


def positive_limit(name: str, value) -> int:
    """A size limit given by the user: a positive whole number of bytes."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserError(f"{name} must be a positive number of bytes (got {value!r})")
    return value


def parse_size(text: str) -> int | None:
    """Bytes in a size as DuckDB writes it ('1.8 GiB', '2GB', '500 MB'); None when it is not one."""
    found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?I?B?)\s*", str(text).upper())
    if not found or found.group(2) not in SIZE_UNITS:
        return None
    return int(float(found.group(1)) * SIZE_UNITS[found.group(2)])


def sql_size_error(sql: str, limit: int) -> SQLError | None:
    """The refusal for a statement over `limit` UTF-8 bytes, else None; checked before any parser runs."""
    size = len(sql) if len(sql) > limit else len(sql.encode("utf-8", "surrogatepass"))  # a char is >= 1 byte
    if size <= limit:
        return None
    return SQLError("refused", f"the SQL is {size:,} bytes, over the {limit:,}-byte limit (max_sql_bytes); "
                               "write a shorter query")


def first_keyword(sql: str) -> str:
    """The statement's first word, lower-cased, after leading whitespace and comments ("" when there is none)."""
    rest = sql[LEADING_COMMENTS.match(sql).end():]
    found = re.match(r"[A-Za-z_]+", rest)
    return found.group(0).lower() if found else ""


def split_statements(sql: str, dialect: str) -> list[str] | None:
    """Statements in `sql` as sqlglot parses them, or None when sqlglot cannot parse it (the engine decides then),
    nesting too deep for Python's recursion limit included."""
    import logging

    import sqlglot
    from sqlglot.errors import ParseError, TokenError

    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # "falling back to Command" warnings are expected here
    try:
        parsed = sqlglot.parse(sql, read=dialect)
        return [p.sql(dialect=dialect) for p in parsed if p is not None]
    except (ParseError, TokenError, ValueError, RecursionError):
        return None


class Database:
    """Common logic; subclasses provide `_open`, `_run_raw` and introspection."""

    dialect = ""

    def __init__(self, path: str | Path, max_sql_bytes: int = DEFAULT_MAX_SQL_BYTES):
        self.path = Path(path)
        self.max_sql_bytes = positive_limit("max_sql_bytes", max_sql_bytes)

    # ------------------------------------------------------------------ public
    def execute(self, sql: str, timeout_s: float = DEFAULT_TIMEOUT_S, max_rows: int | None = DEFAULT_MAX_ROWS,
                count_all: bool = True) -> QueryResult:
        """Run ONE read-only statement. Rows beyond `max_rows` are counted (within the timeout) but not kept.
        The timeout covers the whole call, parsing included; the engine's own parser counts the statements (a
        Python parser here would cost seconds on a long statement, and recurse too deep on a nested one)."""
        entered = time.monotonic()
        sql = (sql or "").strip().rstrip(";").strip()
        if not sql:
            raise SQLError("refused", "empty SQL")
        too_long = sql_size_error(sql, self.max_sql_bytes)
        if too_long is not None:
            raise too_long
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

    @property
    def location(self) -> str:
        """What to show the user: the file, or the server and database (never a password)."""
        return str(self.path)

    def index_key(self) -> tuple[str, str]:
        """(a readable name, a stable key) naming this database's caches: the resolved file path here."""
        return self.path.name, str(self.path.resolve())

    def identity(self) -> dict:
        """What a cache of the database is validated against: the file's identity, size and modification time."""
        stat = self.path.stat()
        return {"path": str(self.path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "inode": stat.st_ino}

    def column_comments(self) -> dict[tuple[str, str], str]:
        """Column comments the engine stores, {(table, column): text}."""
        return {}

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


def start_worker(isolate: bool | None, engine: str, path: Path, memory_limit: str, options: dict):
    """The child process for user statements (started now, ready by first use), or None to run them here.
    `isolate` defaults to on where a process can be watched and killed (POSIX)."""
    if not (isolate if isolate is not None else os.name == "posix"):
        return None
    from tunelab.text2sql.statement_worker import StatementWorker

    return StatementWorker(engine, path, options, memory_limit)


class SQLiteDatabase(Database):
    """A SQLite file, read-only. `isolate` (default where processes can be watched): user statements run in a
    child process on which the time budget and `memory_limit` are enforced; introspection runs here."""

    dialect = "sqlite"

    def __init__(self, path: str | Path, max_sql_bytes: int = DEFAULT_MAX_SQL_BYTES,
                 max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES, memory_limit: str = "2GB",
                 isolate: bool | None = None):
        super().__init__(path, max_sql_bytes)
        self.max_value_bytes = positive_limit("max_value_bytes", max_value_bytes)
        if not parse_size(memory_limit):
            raise UserError(f"memory_limit must be a size such as 2GB or 500MB (got {memory_limit!r})")
        uri = self.path.resolve().as_uri() + "?mode=ro"
        try:
            self.conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self.conn.execute("PRAGMA query_only = ON")
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as err:
            raise UserError(f"cannot open SQLite database '{path}': {err}") from err
        self.conn.set_authorizer(sqlite_authorizer)
        self._lock = threading.Lock()
        self.worker = start_worker(isolate, "sqlite", self.path, memory_limit,
                                   {"max_sql_bytes": max_sql_bytes, "max_value_bytes": max_value_bytes})

    def _run(self, sql, params, timeout_s, max_rows, count_all, user) -> QueryResult:
        if user and self.worker is not None:
            with self._lock:
                return self.worker.run(sql, timeout_s, max_rows, count_all)
        deadline = time.monotonic() + timeout_s
        timed_out = [False]

        def progress() -> int:
            if time.monotonic() > deadline:
                timed_out[0] = True
                return 1  # non-zero aborts the statement
            return 0

        keyword = first_keyword(sql) if user else ""
        if keyword and keyword not in SQLITE_QUERY_KEYWORDS:  # no word ("(", junk): the engine's own error
            raise SQLError("refused", f"only queries may run ({keyword.upper()} refused)")
        start = time.perf_counter()
        with self._lock:
            self.conn.set_progress_handler(progress, 1000)
            # The progress handler runs between VM steps, not inside one: a single randomblob()/printf() call is
            # bounded by the length limit instead. Internal queries keep SQLite's default (they read stored rows).
            length_before = self.conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.max_value_bytes) if user else None
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
                if "too big" in message:
                    message += f" (strings and blobs are limited to {self.max_value_bytes:,} bytes: max_value_bytes)"
                raise SQLError("error", message) from err
            except (ValueError, OverflowError, MemoryError) as err:
                raise SQLError("error", f"{type(err).__name__}: {err}") from err
            finally:
                self.conn.set_progress_handler(None, 0)
                if length_before is not None:
                    self.conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, length_before)
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
        if self.worker is not None:
            self.worker.close()
        self.conn.close()


# ====================================================================== DuckDB

def duckdb_config(memory_limit: str) -> dict:
    return {
        "enable_external_access": False,  # no files: COPY, ATTACH, read_csv, INSTALL/LOAD are refused
        "autoload_known_extensions": False,
        "autoinstall_known_extensions": False,
        "allow_unsigned_extensions": False,
        "memory_limit": memory_limit,
        "lock_configuration": True,  # SET cannot undo any of the above
    }


def run_duckdb(conn, sql, params, timeout_s, max_rows, count_all, user) -> QueryResult:
    """One statement on a DuckDB connection, interrupted at the timeout (between vectors of work: see
    statement_worker.py for what that leaves out). `user`: only one query may run, as DuckDB's own parser reads it."""
    import duckdb

    start = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    timer = threading.Timer(timeout_s, conn.interrupt)
    timer.daemon = True
    timer.start()
    try:
        if user:  # the engine's own parser: exactly one statement, and a query (not even a temp table)
            statements = conn.extract_statements(sql)
            if len(statements) != 1:
                raise SQLError("refused", f"one statement per call ({len(statements)} given)")
            if statements[0].type != duckdb.StatementType.SELECT:
                raise SQLError("refused", f"only queries may run ({statements[0].type.name} refused)")
        cursor = conn.execute(sql, list(params) if params else None)
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
    except (ValueError, OverflowError, MemoryError) as err:
        raise SQLError("error", f"{type(err).__name__}: {err}") from err
    finally:
        timer.cancel()
    return QueryResult(columns, rows, total, truncated, time.perf_counter() - start)


class DuckDBDatabase(Database):
    """A DuckDB file, read-only; `isolate` as for SQLite."""

    dialect = "duckdb"

    def __init__(self, path: str | Path, memory_limit: str = "2GB", max_sql_bytes: int = DEFAULT_MAX_SQL_BYTES,
                 isolate: bool | None = None):
        super().__init__(path, max_sql_bytes)
        import duckdb

        self.memory_limit = memory_limit
        try:
            self.conn = duckdb.connect(str(self.path), read_only=True, config=duckdb_config(memory_limit))
        except duckdb.Error as err:
            raise UserError(f"cannot open DuckDB database '{path}': {str(err).splitlines()[0]}") from err
        self._lock = threading.Lock()
        self.worker = start_worker(isolate, "duckdb", self.path, memory_limit,
                                   {"memory_limit": memory_limit, "max_sql_bytes": max_sql_bytes})

    def _run(self, sql, params, timeout_s, max_rows, count_all, user) -> QueryResult:
        with self._lock:
            if user and self.worker is not None:
                return self.worker.run(sql, timeout_s, max_rows, count_all)
            return run_duckdb(self.conn, sql, params, timeout_s, max_rows, count_all, user)

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
        if self.worker is not None:
            self.worker.close()
        self.conn.close()


# ====================================================================== PostgreSQL

# Roles whose rights a read-only transaction does not contain: superusers (they may run dblink to a fresh session,
# read and write server files, ...) and the predefined roles for server files and programs.
PRIVILEGED_PG_ROLES = ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program")
# SQLSTATEs that are the server refusing (not a mistake in a query): class 25 (invalid transaction state, e.g.
# read-only), insufficient privilege, prohibited SQL (dblink without a password), invalid authorization / grant.
REFUSED_SQLSTATES = ("42501", "2F003", "28000", "0LP01")


def _pg_message(err: Exception) -> str:
    diag = getattr(err, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    return primary or (str(err).strip().splitlines() or [type(err).__name__])[0]


def _is_single_query(sql: str) -> bool:
    """Whether sqlglot reads `sql` as one query; only used to word an error, the server is what refuses."""
    import sqlglot
    from sqlglot import expressions as exp

    try:
        parsed = [p for p in sqlglot.parse(sql, read="postgres") if p is not None]
    except Exception:  # noqa: BLE001 - unparsable: let the server's message stand
        return True
    return len(parsed) == 1 and isinstance(parsed[0], (exp.Query, exp.Values))


class PostgresDatabase(Database):
    """A PostgreSQL database over psycopg 3, read-only by the server's own rules (see the module docstring)."""

    dialect = "postgres"
    cursor_name = "t2s_query"

    def __init__(self, url: str = "postgresql:", allow_privileged: bool = False, connect_timeout_s: float = 10.0,
                 max_sql_bytes: int = DEFAULT_MAX_SQL_BYTES):
        try:
            import psycopg
        except ImportError as err:  # pragma: no cover - a dependency
            raise UserError("PostgreSQL needs psycopg 3: pip install 'psycopg[binary]'") from err
        self.path = None
        self.max_sql_bytes = positive_limit("max_sql_bytes", max_sql_bytes)
        self.url = url
        # A bare scheme means "all from the environment"; libpq fills whatever a URL leaves out from PG* variables.
        self._conninfo = "" if url.strip().lower().rstrip(":") in ("postgres", "postgresql") else url
        self.allow_privileged = allow_privileged
        self.connect_timeout_s = connect_timeout_s
        self._psycopg = psycopg
        self._lock = threading.Lock()
        self.conn = None
        self._connect()

    # ------------------------------------------------------------------ connection
    def _connect(self) -> None:
        psycopg = self._psycopg
        options = {"autocommit": True, "application_name": "tunelab-text2sql"}
        from psycopg.conninfo import conninfo_to_dict

        try:
            given = conninfo_to_dict(self._conninfo)
        except psycopg.ProgrammingError as err:
            raise UserError(f"not a PostgreSQL URL: {_pg_message(err)}") from err
        if "connect_timeout" not in given and not os.environ.get("PGCONNECT_TIMEOUT"):
            options["connect_timeout"] = max(1, int(self.connect_timeout_s))
        try:
            conn = psycopg.connect(self._conninfo, **options)
        except psycopg.Error as err:
            raise UserError(f"cannot connect to PostgreSQL {self._redacted()}: {_pg_message(err)}") from err
        try:
            conn.execute("SET default_transaction_read_only = on")
            super_, *members = conn.execute(
                "SELECT r.rolsuper, " + ", ".join(f"pg_has_role(current_user, '{r}', 'MEMBER')" for r in PRIVILEGED_PG_ROLES)
                + " FROM pg_roles r WHERE r.rolname = current_user").fetchone()
        except psycopg.Error as err:
            conn.close()
            raise UserError(f"cannot use PostgreSQL {self._redacted()}: {_pg_message(err)}") from err
        if (super_ or any(members)) and not self.allow_privileged:
            user = conn.info.user
            conn.close()
            what = "a superuser" if super_ else "a member of " + ", ".join(r for r, m in zip(PRIVILEGED_PG_ROLES, members) if m)
            raise UserError(f"PostgreSQL role '{user}' is {what}: a read-only transaction does not contain its rights "
                            "(server files, programs, dblink); connect with a role that has SELECT only "
                            "(see docs/text2sql-servers.md)")
        self.conn = conn

    def _connection(self):
        if self.conn is None or self.conn.closed or self.conn.broken:
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            self._connect()
        return self.conn

    def _redacted(self) -> str:
        return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", self.url)  # a password in the URL is never shown

    @property
    def location(self) -> str:
        info = self.conn.info if self.conn is not None else None
        if info is None:
            return self._redacted()
        host = info.host if not info.host.startswith("/") else ""
        socket = f"?host={info.host}" if info.host.startswith("/") else ""
        return f"postgresql://{info.user}@{host}:{info.port}/{info.dbname}{socket}"

    def index_key(self) -> tuple[str, str]:
        info = self._connection().info
        return f"pg-{info.dbname}", f"postgres|{info.host}|{info.port}|{info.dbname}|{info.user}"

    def identity(self) -> dict:
        """The server, database and role, plus a data version: the modification counters (rows inserted, updated,
        deleted) and storage files of the visible tables, which any write, TRUNCATE or rewrite changes. Without
        `track_counts` no such version exists, and the identity differs each time (a cache is always rebuilt)."""
        info = self._connection().info
        tables = self.tables()
        (database_oid, track_counts), = self.query(
            "SELECT d.oid::bigint, current_setting('track_counts') FROM pg_database d "
            "WHERE d.datname = current_database()")
        try:
            system_id = str(self.query("SELECT system_identifier FROM pg_control_system()")[0][0])
        except SQLError:
            system_id = None
        rows = self.query(
            "SELECT c.relname, c.relkind::text, c.relfilenode::bigint, coalesce(s.n_tup_ins, 0), "
            "coalesce(s.n_tup_upd, 0), coalesce(s.n_tup_del, 0) FROM pg_class c "
            "LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid "
            "WHERE c.relname = ANY(%s) AND pg_table_is_visible(c.oid) ORDER BY 1", (tables,))
        version = hashlib.sha256(repr(rows).encode()).hexdigest()[:24]
        if track_counts != "on":
            version += f"-unverifiable-{time.time_ns()}"
        return {"engine": "postgres", "host": info.host, "port": info.port, "dbname": info.dbname,
                "user": info.user, "system_identifier": system_id, "database_oid": int(database_oid),
                "data_version": version}

    # ------------------------------------------------------------------ queries
    def _cancel(self, conn) -> None:
        try:
            if hasattr(conn, "cancel_safe"):
                conn.cancel_safe(timeout=5.0)
            else:  # pragma: no cover - psycopg < 3.2
                conn.cancel()
        except Exception:  # noqa: BLE001 - a failed cancel leaves statement_timeout in charge
            pass

    def _run(self, sql, params, timeout_s, max_rows, count_all, user) -> QueryResult:
        psycopg = self._psycopg
        from psycopg.pq import TransactionStatus

        start = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        with self._lock:
            conn = self._connection()
            timer = threading.Timer(timeout_s, self._cancel, args=(conn,))
            timer.daemon = True
            try:
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
                budget_ms = max(1, int(timeout_s * 1000))
                conn.execute(f"BEGIN TRANSACTION READ ONLY; SET LOCAL statement_timeout = {budget_ms}")
                timer.start()
                if user:
                    columns, rows, total, truncated = self._run_cursor(conn, sql, max_rows, count_all, deadline,
                                                                       timeout_s)
                else:
                    with conn.cursor() as cursor:
                        cursor.execute(sql, tuple(params) if params else None)
                        columns = [d.name for d in cursor.description or []]
                        found = cursor.fetchall() if cursor.description else []
                    rows, total, truncated = [tuple(r) for r in found], len(found), False
            except psycopg.Error as err:
                raise self._error(err, sql, timeout_s, user) from err
            finally:
                timer.cancel()
                if timer.is_alive():
                    timer.join()
                self._rollback(conn)
        return QueryResult(columns, rows, total, truncated, time.perf_counter() - start)

    def _run_cursor(self, conn, sql, max_rows, count_all, deadline, timeout_s):
        """The user's SQL as a server-side cursor's query: the server parses `DECLARE c CURSOR FOR <sql>` with the
        extended protocol, which accepts one statement, and a cursor only a query (no data-modifying WITH)."""
        cursor = conn.cursor(name=self.cursor_name)
        cursor.execute(sql)  # no parameters: the text is sent as is
        columns = [d.name for d in cursor.description or []]
        kept: list[tuple] = []
        while max_rows is None or len(kept) < max_rows:
            if time.monotonic() > deadline:
                raise SQLError("timeout", f"query exceeded the {timeout_s:g} s timeout")
            size = 1000 if max_rows is None else min(1000, max_rows - len(kept))
            chunk = cursor.fetchmany(size)
            kept.extend(tuple(r) for r in chunk)
            if len(chunk) < size:
                return columns, kept, len(kept), False
        if time.monotonic() > deadline:
            raise SQLError("timeout", f"query exceeded the {timeout_s:g} s timeout")
        # Beyond the cap rows are counted by the server (MOVE), never transferred.
        with conn.cursor() as mover:
            mover.execute(f"MOVE FORWARD {'ALL' if count_all else 1} IN {self.quote(self.cursor_name)}")
            more = mover.rowcount
        return columns, kept, len(kept) + max(more, 0), more > 0

    def _rollback(self, conn) -> None:
        from psycopg.pq import TransactionStatus

        for _ in range(2):
            try:
                if conn.closed or conn.info.transaction_status == TransactionStatus.IDLE:
                    return
                conn.execute("ROLLBACK")
                return
            except self._psycopg.Error:
                continue  # a late cancel can hit the ROLLBACK itself: once more
        conn.close()  # reconnected on the next call

    def _error(self, err, sql: str, timeout_s: float, user: bool) -> SQLError:
        if isinstance(err, SQLError):
            return err
        state = getattr(err, "sqlstate", None) or ""
        message = _pg_message(err)
        if state == "57014":  # query_canceled: statement_timeout or the client's cancel
            return SQLError("timeout", f"query exceeded the {timeout_s:g} s timeout")
        if not state:  # the connection failed
            return SQLError("error", f"PostgreSQL connection error: {message}")
        if state.startswith("25") or state in REFUSED_SQLSTATES or (state == "0A000" and "data-modifying" in message):
            return SQLError("refused", f"refused by the server: {message}")
        if user and state[:2] in ("42", "0A") and not _is_single_query(sql):
            return SQLError("refused", f"only one query (SELECT, VALUES, WITH ... SELECT) may run; the server "
                                       f"refused: {message}")
        return SQLError("error", message)

    # ------------------------------------------------------------------ introspection
    def tables(self) -> list[str]:
        """Tables, views and materialized views visible on the search path that this role may SELECT from."""
        rows = self.query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND NOT c.relispartition "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' "
            "AND pg_table_is_visible(c.oid) AND has_table_privilege(c.oid, 'SELECT') ORDER BY c.relname", ())
        return [r[0] for r in rows]

    def columns(self, table: str) -> list[ColumnInfo]:
        rows = self.query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), EXISTS (SELECT 1 FROM pg_index i "
            "WHERE i.indrelid = a.attrelid AND i.indisprimary AND a.attnum = ANY(i.indkey)) "
            "FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum", (self.quote(table),))
        return [ColumnInfo(name=r[0], type=str(r[1]).upper(), primary_key=bool(r[2])) for r in rows]

    def declared_foreign_keys(self) -> list[DeclaredForeignKey]:
        visible = set(self.tables())
        rows = self.query(
            "SELECT src.relname, a.attname, dst.relname, b.attname FROM pg_constraint k "
            "JOIN pg_class src ON src.oid = k.conrelid JOIN pg_class dst ON dst.oid = k.confrelid "
            "CROSS JOIN LATERAL unnest(k.conkey, k.confkey) WITH ORDINALITY AS u(src_num, dst_num, pos) "
            "JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.src_num "
            "JOIN pg_attribute b ON b.attrelid = k.confrelid AND b.attnum = u.dst_num "
            "WHERE k.contype = 'f' AND pg_table_is_visible(k.conrelid) AND pg_table_is_visible(k.confrelid) "
            "ORDER BY 1, k.conname, u.pos", ())
        return [DeclaredForeignKey(*r) for r in rows if r[0] in visible and r[2] in visible]

    def column_comments(self) -> dict[tuple[str, str], str]:
        visible = set(self.tables())
        rows = self.query(
            "SELECT c.relname, a.attname, d.description FROM pg_description d "
            "JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid "
            "WHERE d.objsubid > 0 AND pg_table_is_visible(c.oid)", ())
        return {(t, c): text for t, c, text in rows if t in visible}

    def close(self) -> None:
        if self.conn is not None:
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
