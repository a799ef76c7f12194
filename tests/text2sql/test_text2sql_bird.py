"""BIRD files: `sql eval --bird` writes predict_dev.json, `sql score` scores any system's predictions with BIRD's
own rule, checked here against a transcription of BIRD's evaluation on crafted cases."""

import json
import sqlite3

import pytest

from tunelab.cli import main
from tunelab.text2sql import cli as sql_cli
from tunelab.text2sql.evaluate import BIRD_SEPARATOR
from tunelab.text2sql.llm import ScriptedLLM

# (db_id, difficulty, gold SQL, predicted SQL or None for no prediction, BIRD's verdict, the rule it exercises)
CASES = [
    ("zoo", "simple", "SELECT name FROM animal ORDER BY age", "SELECT name FROM animal ORDER BY age DESC", 1,
     "row order is ignored"),
    ("zoo", "simple", "SELECT DISTINCT species FROM animal", "SELECT species FROM animal", 1,
     "duplicates collapse (sets)"),
    ("zoo", "moderate", "SELECT name, age FROM animal WHERE age = 5", "SELECT age, name FROM animal WHERE age = 5", 0,
     "column order matters"),
    ("zoo", "moderate", "SELECT name FROM animal WHERE age = 5", "SELECT name, age FROM animal WHERE age = 5", 0,
     "an extra column is wrong"),
    ("zoo", "simple", "SELECT count(*) FROM animal WHERE species = 'lion'",
     "SELECT CAST(count(*) AS REAL) FROM animal WHERE species = 'lion'", 1, "2 == 2.0 in Python's sets"),
    ("zoo", "simple", "SELECT '5'", "SELECT 5", 0, "text is not a number"),
    ("zoo", "challenging", "SELECT name FROM animal WHERE age > 100", "SELECT name FROM animal WHERE 0", 1,
     "two empty results are equal"),
    ("zoo", "challenging", "SELECT name FROM animal", "SELECT nope FROM animal", 0, "an error scores 0"),
    ("zoo", "moderate", "SELECT name FROM animal", None, 0, "a missing prediction scores 0"),
    ("lab", "simple", "SELECT note FROM sample WHERE id <= 2", "SELECT note FROM sample WHERE id <= 2 ORDER BY id DESC",
     1, "NULL equals NULL (Python None)"),
    ("lab", "moderate", "SELECT note FROM sample WHERE id <= 2",
     "SELECT coalesce(note, '') FROM sample WHERE id <= 2", 0, "NULL is not the empty string"),
    ("lab", "moderate", "SELECT 0.1 + 0.2", "SELECT 0.3", 0, "floats compare exactly, no tolerance"),
    ("lab", "challenging", "SELECT value FROM sample WHERE id = 3", "SELECT round(value, 2) FROM sample WHERE id = 3",
     0, "a rounded float is another float"),
    ("lab", "challenging", "SELECT avg(value) FROM sample", "SELECT sum(value) / count(value) FROM sample", 1,
     "the same float computed alike is equal"),
]


def _make_db(path, script: str) -> None:
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.commit()
    conn.close()


@pytest.fixture
def bird_dir(tmp_path):
    root = tmp_path / "bird"
    _make_db(root / "dev_databases" / "zoo" / "zoo.sqlite", """
        CREATE TABLE animal (id INTEGER PRIMARY KEY, name TEXT, species TEXT, age INTEGER);
        INSERT INTO animal VALUES (1, 'Rex', 'lion', 5), (2, 'Mia', 'lion', 3), (3, 'Zed', 'zebra', 5),
                                  (4, 'Kai', 'zebra', 7);
    """)
    _make_db(root / "dev_databases" / "lab" / "lab.sqlite", """
        CREATE TABLE sample (id INTEGER PRIMARY KEY, note TEXT, value REAL);
        INSERT INTO sample VALUES (1, NULL, 0.125), (2, 'ok', 2.5), (3, 'x', 1.23456);
    """)
    questions = [{"question_id": i, "db_id": db, "question": rule, "evidence": "", "SQL": gold, "difficulty": level}
                 for i, (db, level, gold, _, _, rule) in enumerate(CASES)]
    (root / "dev.json").write_text(json.dumps(questions, indent=2))
    return root


def bird_official(db_path, predicted_sql: str | None, ground_truth: str) -> int:
    """BIRD's evaluation.py `execute_sql`, transcribed: both queries on one connection, fetchall, compare as sets;
    any exception (and here, no prediction) scores 0."""
    if predicted_sql is None:
        return 0
    conn = sqlite3.connect(db_path)
    try:
        cursor = conn.cursor()
        cursor.execute(predicted_sql)
        predicted_res = cursor.fetchall()
        cursor.execute(ground_truth)
        ground_truth_res = cursor.fetchall()
        return int(set(predicted_res) == set(ground_truth_res))
    except Exception:
        return 0
    finally:
        conn.close()


def _write_predictions(path, cases) -> None:
    path.write_text(json.dumps({str(i): f"{pred}{BIRD_SEPARATOR}{db}"
                                for i, (db, _, _, pred, _, _) in enumerate(cases) if pred is not None}, indent=2))


def _ex_by_difficulty(verdicts: list[int]) -> dict:
    out = {"overall": 100.0 * sum(verdicts) / len(verdicts)}
    for level in ("simple", "moderate", "challenging"):
        chosen = [v for v, case in zip(verdicts, CASES) if case[1] == level]
        out[level] = 100.0 * sum(chosen) / len(chosen)
    return out


def test_score_agrees_with_birds_own_rule(bird_dir, tmp_path, capsys):
    predictions = tmp_path / "predict_dev.json"
    _write_predictions(predictions, CASES)
    official = [bird_official(bird_dir / "dev_databases" / db / f"{db}.sqlite", pred, gold)
                for db, _, gold, pred, _, _ in CASES]
    assert official == [case[4] for case in CASES]  # the crafted verdicts are BIRD's

    out = tmp_path / "scored"
    code = main(["sql", "score", "--predictions", str(predictions), "--bird", str(bird_dir), "--out", str(out),
                 "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    outcomes = json.loads((out / "outcomes.json").read_text())
    got = [int(o["ex"]) for o in outcomes]
    assert got == official, [case[5] for case, g, o in zip(CASES, got, official) if g != o]
    expected = _ex_by_difficulty(official)
    for bucket, ex in expected.items():
        assert report[bucket]["ex"] == pytest.approx(ex), bucket
    assert report["missing"] == 1 and outcomes[8]["error"] == "no SQL predicted"
    assert outcomes[7]["error"].startswith("error:")
    assert 0 < report["overall"]["r_ves"] <= 125 * max(expected.values()) / 100
    assert json.loads((out / "summary.json").read_text())["overall"]["ex"] == pytest.approx(expected["overall"])


def test_score_prints_the_summary_and_limits(bird_dir, tmp_path, capsys):
    predictions = tmp_path / "predict_dev.json"
    _write_predictions(predictions, CASES)
    assert main(["sql", "score", "--predictions", str(predictions), "--bird", str(bird_dir), "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "overall      n=   2  EX 100.0" in out and "simple       n=   2" in out and "moderate" not in out


def test_eval_bird_writes_predict_dev_json_that_score_reproduces(bird_dir, tmp_path, monkeypatch, capsys):
    cases = CASES[:6]
    replies = [f"```sql\n{pred or 'no idea'}\n```" for _, _, _, pred, _, _ in cases]
    replies[0] = "```sql\nSELECT name\nFROM animal\nORDER BY age DESC;\n```"  # multi-line SQL survives the file
    monkeypatch.setattr(sql_cli, "make_llm", lambda model, base_url, threads: ScriptedLLM(replies))
    out = tmp_path / "run"
    code = main(["sql", "eval", "--bird", str(bird_dir), "--method", "baseline", "--limit", str(len(cases)),
                 "--out", str(out), "--json"])
    assert code == 0
    evaluated = json.loads(capsys.readouterr().out)
    written = json.loads((out / "predict_dev.json").read_text())
    assert list(written) == [str(i) for i in range(len(cases))]
    assert written["0"] == f"SELECT name\nFROM animal\nORDER BY age DESC{BIRD_SEPARATOR}zoo"
    assert all(v.split(BIRD_SEPARATOR)[1] == case[0] for v, case in zip(written.values(), cases))
    assert (out / "outcomes.json").is_file() and (out / "summary.json").is_file()

    code = main(["sql", "score", "--predictions", str(out / "predict_dev.json"), "--bird", str(bird_dir),
                 "--limit", str(len(cases)), "--json"])
    assert code == 0
    scored = json.loads(capsys.readouterr().out)
    for bucket in ("overall", "simple", "moderate"):
        assert scored[bucket]["ex"] == pytest.approx(evaluated[bucket]["ex"]), bucket
    assert evaluated["overall"]["ex"] == pytest.approx(100 * sum(c[4] for c in cases) / len(cases))


@pytest.mark.parametrize("content,message", [
    ("{\"0\": ", "malformed JSON"),
    ("[\"SELECT 1\"]", "expected a JSON object"),
    (json.dumps({"0": "SELECT 1"}), "is not \"SQL\\t----- bird -----\\tdb_id\""),
    (json.dumps({"0": 7}), "prediction 0 is not"),
    (json.dumps({"first": f"SELECT 1{BIRD_SEPARATOR}zoo"}), "not a question index"),
    (json.dumps({"99": f"SELECT 1{BIRD_SEPARATOR}zoo"}), "has 14 questions"),
    (json.dumps({"0": f"SELECT 1{BIRD_SEPARATOR}lab"}), "is for db_id 'lab' but question 0 is on 'zoo'"),
])
def test_malformed_predictions_are_one_line_errors(bird_dir, tmp_path, capsys, content, message):
    predictions = tmp_path / "predict_dev.json"
    predictions.write_text(content)
    code = main(["sql", "score", "--predictions", str(predictions), "--bird", str(bird_dir)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_missing_files_are_one_line_errors(bird_dir, tmp_path, capsys):
    code = main(["sql", "score", "--predictions", str(tmp_path / "none.json"), "--bird", str(bird_dir)])
    err = capsys.readouterr().err
    assert code == 2 and "no such file" in err and len(err.strip().splitlines()) == 1
    predictions = tmp_path / "predictions.json"
    predictions.write_text("{}")
    code = main(["sql", "score", "--predictions", str(predictions), "--bird", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "not a BIRD folder" in err and len(err.strip().splitlines()) == 1
