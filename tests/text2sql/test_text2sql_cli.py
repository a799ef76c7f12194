"""`tunelab sql ...` end to end with a scripted LLM (the CLI's LLM factory is replaced)."""

import json

import pytest

from tunelab.cli import main
from tunelab.text2sql import cli as sql_cli
from tunelab.text2sql.llm import ScriptedLLM


@pytest.fixture
def scripted(monkeypatch):
    replies = []
    monkeypatch.setattr(sql_cli, "make_llm", lambda model, base_url, threads: ScriptedLLM(replies))
    return replies


def test_ask_prints_steps_sql_and_result(shop_path, scripted, capsys):
    scripted += ['Thought: look\nAction: SearchValue("nice")',
                 "Thought: count\nAction: ExecuteSQL(\"SELECT count(*) AS n FROM customers WHERE city = 'Nice '\")",
                 "Thought: ok\nAction: Done()"]
    code = main(["sql", "ask", "--db", str(shop_path), "--encoder", "none", "How many customers live in Nice?"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.index("--- controller (grounding: the columns closest to the question): SearchColumn") < out.index("--- turn 1")  # the controller's grounding first
    assert "customers.city = 'Nice '" in out
    assert "SQL: SELECT count(*) AS n FROM customers WHERE city = 'Nice '" in out
    assert "=== answered after 2 turns" in out  # one search allowed, then the SQL that returned rows ends it


def test_ask_paper_style_runs_the_papers_loop(shop_path, scripted, capsys):
    scripted += ['Thought: look\nAction: SearchValue("nice")',
                 "Thought: count\nAction: ExecuteSQL(\"SELECT count(*) FROM customers WHERE city = 'Nice '\")",
                 "Thought: ok\nAction: Done()"]
    code = main(["sql", "ask", "--db", str(shop_path), "--encoder", "none", "--style", "paper", "Nice?"])
    out = capsys.readouterr().out
    assert code == 0 and "--- controller" not in out and "=== done after 3 turns" in out


def test_ask_writes_trajectory_json(shop_path, scripted, tmp_path, capsys):
    scripted += ['Thought: one\nAction: ExecuteSQL("SELECT 1")']
    target = tmp_path / "traj.json"
    assert main(["sql", "ask", "--db", str(shop_path), "--encoder", "none", "--trajectory", str(target), "q"]) == 0
    assert json.loads(target.read_text())["final_sql"] == "SELECT 1"


@pytest.mark.parametrize("args,message", [
    (["sql", "ask", "--db", "{db}", "  "], "question is empty"),
    (["sql", "ask", "--db", "{missing}", "q"], "does not exist"),
    (["sql", "ask", "--db", "{notdb}", "q"], "neither a SQLite nor a DuckDB"),
    (["sql", "eval", "--questions", "{bad}"], "malformed"),
    (["sql", "eval"], "exactly one of"),
    (["sql", "ask", "--db", "{db}", "--style", "huge", "q"], "unknown style"),
])
def test_user_errors_are_one_line(shop_path, tmp_path, capsys, args, message):
    notdb = tmp_path / "x.csv"
    notdb.write_text("a,b\n1,2\n")
    bad = tmp_path / "q.json"
    bad.write_text("[{")
    fill = {"db": str(shop_path), "missing": str(tmp_path / "nope.sqlite"), "notdb": str(notdb), "bad": str(bad)}
    code = main([a.format(**fill) for a in args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_eval_baseline_on_question_file(shop_path, scripted, tmp_path, capsys):
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in [
        {"id": "a", "db": shop_path.name, "question": "How many orders?", "sql": "SELECT count(*) FROM orders"},
        {"id": "b", "db": shop_path.name, "question": "How many regions?", "sql": "SELECT count(*) FROM regions",
         "difficulty": "moderate"},
    ]))
    scripted += ["```sql\nSELECT count(*) FROM orders;\n```", "SELECT count(*) FROM customers"]
    out_dir = tmp_path / "out"
    code = main(["sql", "eval", "--questions", str(questions), "--method", "baseline", "--out", str(out_dir), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["overall"]["ex"] == 50 and summary["simple"]["ex"] == 100 and summary["moderate"]["ex"] == 0
    assert len(json.loads((out_dir / "outcomes.json").read_text())) == 2


def test_index_and_schema_commands(shop_path, capsys):
    assert main(["sql", "index", "--db", str(shop_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["values"] > 0 and info["columns"] >= 10
    assert main(["sql", "schema", "--db", str(shop_path)]) == 0
    assert "| orders | order_id |" in capsys.readouterr().out


def test_index_dir_option_puts_the_index_there(shop_path, scripted, tmp_path, capsys):
    folder = tmp_path / "indexes"
    assert main(["sql", "index", "--db", str(shop_path), "--index-dir", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["index"].startswith(str(folder))
    scripted += ['Thought: one\nAction: ExecuteSQL("SELECT 1")']
    other = tmp_path / "ask-indexes"
    assert main(["sql", "ask", "--db", str(shop_path), "--encoder", "none", "--index-dir", str(other),
                 "How many customers live in Lyon?"]) == 0
    assert any(other.iterdir())  # the controller's SearchValue built its index there


def test_ask_prints_why_the_controller_acted(shop_path, scripted, capsys):
    scripted += ["Thought: count\nAction: ExecuteSQL(\"SELECT count(*) AS n FROM customers WHERE city = 'nice'\")"]
    assert main(["sql", "ask", "--db", str(shop_path), "--encoder", "none", "How many customers live in Nice?"]) == 0
    out = capsys.readouterr().out
    assert "--- controller (grounding: where the question's phrases are stored): SearchValue(" in out
    assert "--- controller (rewrite: used the stored spelling 'Nice '): ExecuteSQL(" in out


def test_format_step_shows_a_native_call_that_is_not_in_the_text():
    from tunelab.text2sql.agent import Step

    step = Step(2, "model", "", {"name": "ExecuteSQL", "arguments": {"sql": "SELECT 1"}}, "1", True, llm_s=0.5,
                call_format="native")
    assert sql_cli.format_step(step) == "--- turn 2 (0.5 s, native call)\nAction: ExecuteSQL(sql='SELECT 1')\nObservation: 1"
