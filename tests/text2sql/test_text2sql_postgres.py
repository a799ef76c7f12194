"""PostgreSQL, the third engine, against a real server: a throwaway cluster (Debian's `postgresql` package) in a
temporary folder on a free port, loaded with TPC-H sf 0.01, stopped at the end. Skipped with a one-line reason when
no cluster can start. The attack corpus runs as a SELECT-only role and as the tables' owner (who may write, so only
the server's read-only transaction and one-query cursor stand in the way): nothing succeeds, the data is unchanged.
"""

import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed")

from tunelab.cli import main  # noqa: E402
from tunelab.errors import UserError  # noqa: E402
from tunelab.text2sql import cli as sql_cli  # noqa: E402
from tunelab.text2sql.db import PostgresDatabase, SQLError, open_database  # noqa: E402
from tunelab.text2sql.llm import ScriptedLLM  # noqa: E402
from tunelab.text2sql.schema import introspect  # noqa: E402
from tunelab.text2sql.tools import Toolbox  # noqa: E402
from tunelab.text2sql.value_index import ValueIndex  # noqa: E402

TPCH_TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]
BUDGET_S = 1.0


# ---------------------------------------------------------------------------------------------- the cluster

def _pg_bin() -> Path | None:
    def version(path: str) -> tuple:
        return tuple(int(x) for x in re.findall(r"\d+", path)[:2])

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """initdb + pg_ctl as the `postgres` OS user when run as root (PostgreSQL refuses to run as root)."""

    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="t2s-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            import pwd

            owner = pwd.getpwnam("postgres")  # KeyError: no such user
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, timeout: int = 120) -> None:
        done = subprocess.run(self.prefix + list(args), cwd=self.root, capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines() or ["?"]
            raise RuntimeError(f"{Path(args[0]).name} failed: {lines[-1]}")

    def start(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c full_page_writes=off -c synchronous_commit=off -c max_connections=40 "
                   "-c autovacuum=off")  # nothing but the tests assigns transaction ids
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                  "-t", "90", "-o", options, "start", timeout=120)

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
        except Exception:  # noqa: BLE001 - nothing running
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    def admin(self, dbname: str = "postgres"):
        return psycopg.connect(host=str(self.root), port=self.port, user="postgres", dbname=dbname, autocommit=True)

    def url(self, user: str, dbname: str = "tpch") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"


def _pg_type(duck_type: str) -> str:
    return {"VARCHAR": "varchar", "DOUBLE": "double precision", "HUGEINT": "numeric(38,0)"}.get(duck_type, duck_type)


def _load_tpch(cluster: Cluster, duckdb_path: Path) -> None:
    import duckdb

    with cluster.admin() as admin:
        admin.execute("CREATE ROLE t2s_owner LOGIN")
        admin.execute("CREATE ROLE t2s_reader LOGIN NOINHERIT")  # docs/text2sql-servers.md's SELECT-only role
        admin.execute("ALTER ROLE t2s_reader SET default_transaction_read_only = on")
        admin.execute("CREATE DATABASE tpch")
        admin.execute("CREATE DATABASE shop")
    source = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        with cluster.admin("tpch") as admin:
            try:
                admin.execute("CREATE EXTENSION dblink")  # so that the dblink attacks meet a real dblink
            except psycopg.Error:
                pass
            for table in TPCH_TABLES:
                columns = source.execute(f"DESCRIBE {table}").fetchall()
                body = ", ".join(f"{name} {_pg_type(kind)}" for name, kind, *_ in columns)
                admin.execute(f"CREATE TABLE {table} ({body})")
                csv_path = cluster.root / f"{table}.csv"
                source.execute(f"COPY {table} TO '{csv_path}' (HEADER false)")
                with admin.cursor() as cursor, cursor.copy(f"COPY {table} FROM STDIN (FORMAT csv)") as copy:
                    copy.write(csv_path.read_bytes())
                csv_path.unlink()
                admin.execute(f"ALTER TABLE {table} OWNER TO t2s_owner")
            admin.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO t2s_reader")
            admin.execute("ANALYZE")
        with cluster.admin("shop") as admin:  # declared keys and a column comment
            admin.execute("CREATE TABLE regions (region_id integer PRIMARY KEY, name text NOT NULL)")
            admin.execute("CREATE TABLE customers (customer_id integer PRIMARY KEY, name text, "
                          "region_id integer REFERENCES regions (region_id))")
            admin.execute("COMMENT ON COLUMN customers.name IS 'full name of the customer'")
            admin.execute("INSERT INTO regions VALUES (1, 'Nord'), (2, 'Sud')")
            admin.execute("INSERT INTO customers VALUES (1, 'Ada', 1), (2, 'Bo', 2), (3, 'Cy', 2)")
            admin.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO t2s_reader")
    finally:
        source.close()


@pytest.fixture(scope="module")
def cluster(tpch_master):
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    try:
        server = Cluster(bin_dir)
    except KeyError:
        pytest.skip("no 'postgres' OS user to run the cluster as")
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        server.stop()
        pytest.skip(f"cannot start a PostgreSQL cluster: {err}")
    try:
        _load_tpch(server, tpch_master)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def reader_url(cluster):
    return cluster.url("t2s_reader")


@pytest.fixture
def reader(reader_url):
    with open_database(reader_url) as db:
        yield db


def _next_xid(cluster: Cluster) -> int:
    """The cluster's next transaction id: any write, even one rolled back, takes one (reading never does)."""
    with cluster.admin("tpch") as admin:
        return int(admin.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint").fetchone()[0])


def _checksum(cluster: Cluster, content: bool = True) -> dict:
    """Every table's content (row count and an order-free hash of every row) and every object a successful attack
    could leave behind, seen as the superuser."""
    with cluster.admin("tpch") as admin:
        found = {t: admin.execute(f"SELECT count(*), sum(hashtextextended(x::text, 0)) FROM {t} x").fetchone()
                 for t in TPCH_TABLES} if content else {}
        for name, sql in {
            "relations": "SELECT string_agg(c.relname || ':' || c.relkind::text || ':' || coalesce(c.relacl::text, ''), ',' "
                         "ORDER BY c.relname) FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace",
            "roles": "SELECT string_agg(rolname || rolsuper::text, ',' ORDER BY rolname) FROM pg_roles",
            "role_settings": "SELECT count(*) FROM pg_db_role_setting",
            "databases": "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database",
            "large_objects": "SELECT count(*) FROM pg_largeobject_metadata",
            "functions": "SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace",
            "comments": "SELECT count(*) FROM pg_description",
            "extensions": "SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension",
            "prepared": "SELECT count(*) FROM pg_prepared_xacts",
        }.items():
            found[name] = admin.execute(sql).fetchone()[0]
    return found


@pytest.fixture(scope="module")
def pristine(cluster):
    return _checksum(cluster)


@pytest.fixture(scope="module")
def pristine_catalog(cluster):
    return _checksum(cluster, content=False)


# ---------------------------------------------------------------------------------------------- schema and tools

def test_schema_introspection_and_inferred_keys(reader):
    assert reader.dialect == "postgres" and reader.path is None
    assert reader.location.startswith("postgresql://t2s_reader@127.0.0.1:") and reader.location.endswith("/tpch")
    schema = introspect(reader)
    assert schema.dialect == "postgres"
    assert sorted(schema.tables) == TPCH_TABLES
    assert schema.tables["customer"].row_count == 1500 and schema.tables["region"].row_count == 5
    types = {c.name: c.type for c in schema.tables["customer"].columns}
    assert types["c_custkey"] == "BIGINT" and types["c_acctbal"] == "NUMERIC(15,2)"
    keys = {(k.table, k.column): (k.ref_table, k.ref_column) for k in schema.foreign_keys}
    assert all(k.inferred for k in schema.foreign_keys)  # TPC-H declares none
    assert keys[("orders", "o_custkey")] == ("customer", "c_custkey")
    assert keys[("customer", "c_nationkey")] == ("nation", "n_nationkey")
    assert keys[("nation", "n_regionkey")] == ("region", "r_regionkey")
    assert keys[("lineitem", "l_orderkey")] == ("orders", "o_orderkey")


def test_declared_foreign_keys_primary_keys_and_comments(cluster):
    with open_database(cluster.url("t2s_reader", "shop")) as db:
        schema = introspect(db)
    assert sorted(schema.tables) == ["customers", "regions"]
    assert schema.tables["regions"].primary_key == ["region_id"]
    assert [k.render() for k in schema.foreign_keys] == ["customers.region_id -> regions.region_id"]
    assert schema.descriptions == {("customers", "name"): "full name of the customer"}


def test_the_four_tools(reader, tmp_path):
    box = Toolbox(reader, encoder=None, index_dir=tmp_path / "idx")
    try:
        columns = box.search_column("customer mktsegment").text
        assert "customer.c_mktsegment" in columns and "'BUILDING'" in columns  # with its categorical values
        assert "customer.c_mktsegment = 'BUILDING'" in box.search_value("building").text
        assert "customer.c_mktsegment = 'BUILDING'" in box.search_value("buildng").text  # typo: the fuzzy path
        path = box.find_shortest_path("customer", "nation")
        assert path.ok and "customer.c_nationkey = nation.n_nationkey" in path.text
        result = box.execute_sql("SELECT count(*) FROM customer")
        assert result.ok and result.result.rows == [(1500,)]
        refused = box.execute_sql("DELETE FROM customer")
        assert not refused.ok and refused.text.startswith("SQL refused")
        assert list((tmp_path / "idx").glob("pg-tpch.*.t2s-index.sqlite"))  # the index went where it was told
    finally:
        box.close()


def test_row_cap_counts_on_the_server(reader):
    result = reader.execute("SELECT * FROM lineitem", max_rows=3)
    assert (len(result.rows), result.total_rows, result.truncated) == (3, 60175, True)
    result = reader.execute("SELECT * FROM region", max_rows=5)
    assert (len(result.rows), result.total_rows, result.truncated) == (5, 5, False)
    assert reader.execute("SELECT '100%' AS p, 1 AS n", max_rows=1).rows == [("100%", 1)]  # no placeholders


def test_value_index_is_rebuilt_when_the_data_changes(cluster, tmp_path):
    url = cluster.url("t2s_reader", "shop")
    with open_database(url) as db:
        schema = introspect(db)
        first = ValueIndex.open_or_build(db, schema, index_dir=tmp_path, progress=False)
        built, path = first.meta()["build_s"], first.path
        first.close()
        again = ValueIndex.open_or_build(db, schema, index_dir=tmp_path, progress=False)
        assert again.meta()["build_s"] == built and again.path == path  # unchanged data: reused
        again.close()
        before = db.identity()
        with cluster.admin("shop") as admin:
            admin.execute("INSERT INTO regions VALUES (3, 'Atlantis')")
            admin.execute("SELECT pg_stat_force_next_flush()")
        deadline = time.monotonic() + 10
        while db.identity() == before and time.monotonic() < deadline:
            time.sleep(0.2)  # the server publishes its modification counters within about a second
        assert db.identity() != before
        fresh = ValueIndex.open_or_build(db, schema, index_dir=tmp_path, progress=False)
        assert fresh.path == path and [h.value for h in fresh.search("atlantis")] == ["Atlantis"]
        fresh.close()


def test_privileged_roles_are_refused(cluster):
    with pytest.raises(UserError, match="superuser.*SELECT only"):
        open_database(cluster.url("postgres"))
    db = PostgresDatabase(cluster.url("postgres"), allow_privileged=True)  # explicitly allowed: still read-only
    try:
        with pytest.raises(SQLError) as err:
            db.execute("DROP TABLE region")
        assert err.value.kind == "refused"
    finally:
        db.close()


def test_connection_errors_are_user_errors(cluster):
    with pytest.raises(UserError, match="cannot connect to PostgreSQL"):
        open_database(f"postgresql://t2s_reader@127.0.0.1:{cluster.port}/no_such_database")
    with pytest.raises(UserError, match="cannot connect") as err:
        open_database(f"postgresql://t2s_reader:secret@127.0.0.1:{_free_port()}/tpch")
    assert "secret" not in str(err.value)


def test_pg_environment_variables(cluster, monkeypatch):
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", str(cluster.port))
    monkeypatch.setenv("PGUSER", "t2s_reader")
    monkeypatch.setenv("PGDATABASE", "tpch")
    for target in ("postgresql:", "postgresql://"):
        with open_database(target) as db:
            assert db.execute("SELECT count(*) FROM nation").rows == [(25,)]


# ---------------------------------------------------------------------------------------------- the CLI

@pytest.fixture
def scripted(monkeypatch):
    replies = []
    monkeypatch.setattr(sql_cli, "make_llm", lambda model, base_url, threads: ScriptedLLM(replies))
    return replies


def test_cli_schema_with_a_url(reader_url, capsys):
    assert main(["sql", "schema", "--db", reader_url]) == 0
    out = capsys.readouterr().out
    assert "customer" in out and "lineitem" in out and "foreign keys inferred" in out


def test_cli_ask_with_a_url(reader_url, scripted, capsys):
    scripted += ['Thought: x\nAction: ExecuteSQL("SELECT count(*) FROM customer")', "Thought: ok\nAction: Done()"]
    code = main(["sql", "ask", "--db", reader_url, "--encoder", "none", "How many customers are there?"])
    out = capsys.readouterr().out
    assert code == 0
    assert "SQL: SELECT count(*) FROM customer" in out and "1500" in out


def test_cli_eval_on_a_question_file_naming_the_server(reader_url, scripted, tmp_path, capsys):
    import json

    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in [
        {"id": "a", "db": reader_url, "question": "How many customers?", "sql": "SELECT count(*) FROM customer"},
        {"id": "b", "db": reader_url, "question": "How many nations?", "sql": "SELECT count(*) FROM nation"}]))
    scripted += ["```sql\nSELECT count(*) FROM customer\n```", "SELECT count(*) FROM region"]
    code = main(["sql", "eval", "--questions", str(questions), "--method", "baseline", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["overall"]["n"] == 2 and summary["overall"]["ex"] == 50


def test_cli_index_with_a_url(reader_url, tmp_path, monkeypatch, capsys):
    import json

    monkeypatch.setenv("TUNELAB_T2S_INDEX_DIR", str(tmp_path / "idx"))
    assert main(["sql", "index", "--db", reader_url, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["database"]["engine"] == "postgres" and info["values"] > 1000
    assert Path(info["index"]).parent == tmp_path / "idx"


def test_cli_reports_a_bad_url_in_one_line(cluster, capsys):
    code = main(["sql", "schema", "--db", f"postgresql://t2s_reader@127.0.0.1:{cluster.port}/nope"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot connect to PostgreSQL" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------- the attack corpus

MARK = "{mark}"  # replaced by a file path in the cluster's folder: a successful file write or program run leaves it
POSTGRES_ATTACKS = [
    # writes
    "INSERT INTO region VALUES (9, 'X', 'x')",
    "INSERT INTO region SELECT r_regionkey + 10, r_name, r_comment FROM region RETURNING *",
    "UPDATE nation SET n_name = 'x'",
    "UPDATE nation SET n_name = 'x' WHERE n_nationkey = 1 RETURNING *",
    "DELETE FROM lineitem",
    "TRUNCATE orders",
    "MERGE INTO region r USING nation n ON r.r_regionkey = n.n_regionkey WHEN MATCHED THEN DELETE",
    "WITH d AS (DELETE FROM region RETURNING *) SELECT * FROM d",
    "WITH u AS (UPDATE nation SET n_name = 'x' RETURNING 1) SELECT count(*) FROM u",
    "SELECT * INTO evil FROM region",
    "SELECT * FROM region FOR UPDATE",
    # DDL and administration
    "DROP TABLE orders",
    "DROP TABLE IF EXISTS customer CASCADE",
    "CREATE TABLE evil (x int)",
    "CREATE TEMP TABLE evil (x int)",
    "CREATE TABLE evil AS SELECT * FROM region",
    "CREATE VIEW v AS SELECT 1",
    "CREATE INDEX i ON customer (c_name)",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE EXTENSION IF NOT EXISTS file_fdw",
    "CREATE ROLE evil SUPERUSER LOGIN",
    "ALTER TABLE nation ADD COLUMN x int",
    "ALTER ROLE CURRENT_USER SUPERUSER",
    "ALTER ROLE CURRENT_USER SET default_transaction_read_only = off",
    "GRANT ALL ON region TO PUBLIC",
    "COMMENT ON TABLE region IS 'x'",
    "VACUUM region",
    "ANALYZE region",
    "REINDEX TABLE region",
    "CLUSTER region",
    "LOCK TABLE region IN ACCESS EXCLUSIVE MODE",
    "REFRESH MATERIALIZED VIEW region",
    "DO $$ BEGIN DELETE FROM region; END $$",
    # COPY, server files, large objects
    "COPY region TO PROGRAM 'touch {mark}'",
    "COPY (SELECT 1) TO PROGRAM 'id > {mark}'",
    "COPY region FROM PROGRAM 'echo 9,X,x'",
    "COPY region TO '{mark}'",
    "COPY region FROM '/etc/passwd'",
    "COPY region TO STDOUT",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_read_binary_file('/etc/hostname')",
    "SELECT pg_ls_dir('.')",
    "SELECT * FROM pg_stat_file('/etc/passwd')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT lo_export(lo_from_bytea(0, 'x'), '{mark}')",
    # dblink: a second session would not be read-only
    "SELECT dblink_exec('dbname=tpch host=127.0.0.1 port={port}', 'DELETE FROM region')",
    "SELECT * FROM dblink('dbname=tpch user=postgres host=127.0.0.1 port={port}', "
    "'DELETE FROM region RETURNING 1') AS t(x int)",
    "SELECT dblink_connect('c', 'dbname=tpch user=postgres host=127.0.0.1 port={port}')",
    # identity, configuration, transaction control
    "SET ROLE postgres",
    "SET SESSION AUTHORIZATION postgres",
    "SELECT set_config('role', 'postgres', false)",
    "SET default_transaction_read_only = off",
    "SET transaction_read_only = off",
    "SELECT set_config('transaction_read_only', 'off', true)",
    "RESET ALL",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT a",
    "PREPARE TRANSACTION 'x'",
    "PREPARE p AS DELETE FROM region",
    "LISTEN x",
    "NOTIFY x",
    # beyond the budget
    "SELECT pg_sleep(30)",
    "SELECT pg_sleep(1) FROM generate_series(1, 30)",
    "SELECT set_config('statement_timeout', '0', true), pg_sleep(30)",
    "SELECT count(*) FROM lineitem a, lineitem b",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
    # stacked statements
    "SELECT 1; DROP TABLE orders",
    "SELECT 1; SELECT 2",
    "SELECT * FROM region; DELETE FROM region",
    "COMMIT; DROP TABLE orders",
    "SELECT 1; COPY region TO PROGRAM 'touch {mark}'",
    "SELECT 1; SET ROLE postgres",
]
# PostgreSQL runs these in a read-only transaction (they are transactional: a large object exists, a notification is
# sent, only once the transaction commits); every call is rolled back, so they leave nothing behind.
ROLLED_BACK = ["SELECT lo_create(0)", "SELECT lo_from_bytea(0, 'x')", "SELECT lo_creat(-1)",
               "SELECT lowrite(lo_open(lo_from_bytea(0, 'x'), 131072), 'y')", "SELECT pg_notify('x', 'y')"]
ROLES = ["t2s_reader", "t2s_owner"]


def test_corpus_covers_the_issue():
    text = "\n".join(POSTGRES_ATTACKS)
    for needle in ("INSERT", "DROP", "COPY", "PROGRAM", "pg_read_file", "lo_import", "dblink", "SET ROLE",
                   "pg_sleep", "; "):
        assert needle in text, needle
    assert len(POSTGRES_ATTACKS) >= 60


@pytest.fixture(scope="module")
def role_dbs(cluster):
    dbs = {role: open_database(cluster.url(role)) for role in ROLES}
    yield dbs
    for db in dbs.values():
        db.close()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("attack", POSTGRES_ATTACKS)
def test_attack_fails_within_budget_and_leaves_data_unchanged(cluster, pristine, pristine_catalog, role_dbs, role,
                                                               attack):
    mark = cluster.root / "pwned"
    sql = attack.replace("{mark}", str(mark)).replace("{port}", str(cluster.port))
    db = role_dbs[role]
    xid = _next_xid(cluster)
    start = time.perf_counter()
    with pytest.raises(SQLError) as err:
        db.execute(sql, timeout_s=BUDGET_S)
    elapsed = time.perf_counter() - start
    assert err.value.kind in ("refused", "error", "timeout"), sql
    assert elapsed <= BUDGET_S + 0.5, (sql, elapsed)
    if "pg_sleep" in sql or "lineitem a" in sql or "RECURSIVE" in sql:
        assert err.value.kind == "timeout"
    assert not mark.exists()
    assert _next_xid(cluster) == xid  # nothing was written anywhere, not even in a transaction rolled back
    assert _checksum(cluster, content=False) == pristine_catalog
    # the session is unchanged: same role, still read-only, still usable
    assert db.query("SELECT current_user, current_setting('default_transaction_read_only')") == [(role, "on")]
    assert db.execute("SELECT count(*) FROM region").rows == [(5,)]


def test_after_the_corpus_every_table_is_unchanged(cluster, pristine, role_dbs):
    """Runs after the parametrised attacks above (file order): the full content checksum, once."""
    assert _checksum(cluster) == pristine


@pytest.mark.parametrize("sql", ["SELECT 1; DROP TABLE orders", "SELECT 1; SELECT 2", "DELETE FROM region",
                                 "COPY region TO PROGRAM 'true'", "SET ROLE postgres",
                                 "WITH d AS (DELETE FROM region RETURNING *) SELECT * FROM d"])
def test_server_refuses_without_the_statement_split(role_dbs, pristine, cluster, sql):
    """Below `execute`'s own checks (the length cap): the server's cursor refuses on its own."""
    with pytest.raises(SQLError):
        role_dbs["t2s_owner"]._run(sql, (), 2.0, 10, True, user=True)
    assert _checksum(cluster) == pristine


def test_settings_a_query_changes_do_not_outlive_it(role_dbs, pristine, cluster):
    """set_config() inside a SELECT runs, but the call's transaction is rolled back: nothing carries over."""
    db = role_dbs["t2s_owner"]
    assert db.execute("SELECT set_config('default_transaction_read_only', 'off', false)").rows == [("off",)]
    assert db.execute("SELECT set_config('statement_timeout', '0', false)").rows == [("0",)]
    assert db.query("SHOW default_transaction_read_only") == [("on",)]
    with pytest.raises(SQLError) as err:
        db._run("DELETE FROM region", (), 2.0, 10, True, user=True)
    assert err.value.kind in ("refused", "error")
    start = time.perf_counter()
    with pytest.raises(SQLError) as err:
        db.execute("SELECT pg_sleep(10)", timeout_s=BUDGET_S)
    assert err.value.kind == "timeout" and time.perf_counter() - start <= BUDGET_S + 0.5
    assert _checksum(cluster) == pristine


@pytest.mark.parametrize("sql", ROLLED_BACK)
def test_transactional_side_effects_never_outlive_the_call(cluster, pristine, role_dbs, sql):
    with cluster.admin("tpch") as listener:
        listener.execute("LISTEN x")
        for role in ROLES:
            role_dbs[role].execute(sql, timeout_s=BUDGET_S)  # runs: allowed in a read-only transaction ...
        assert list(listener.notifies(timeout=0.5)) == []  # ... but never committed: no notification,
    assert _checksum(cluster) == pristine  # no large object
