"""BIRD-exact evaluation on a tiny BIRD-format fixture, comparators against their definitions."""

import json
import math
import sqlite3

import pytest

from tunelab.errors import UserError
from tunelab.text2sql.db import open_database
from tunelab.text2sql.evaluate import (Prediction, bird_match, evaluate, load_bird, load_questions, rves_score,
                                       suite_match, ves_reward)


@pytest.fixture
def bird_dir(tmp_path):
    db_dir = tmp_path / "dev_databases" / "zoo"
    db_dir.mkdir(parents=True)
    conn = sqlite3.connect(db_dir / "zoo.sqlite")
    conn.executescript("""
        CREATE TABLE animal (id INTEGER PRIMARY KEY, name TEXT, species TEXT, age INTEGER, keeper_id INTEGER
            REFERENCES keeper(id));
        CREATE TABLE keeper (id INTEGER PRIMARY KEY, name TEXT);
        INSERT INTO keeper VALUES (1, 'Ana'), (2, 'Ben');
        INSERT INTO animal VALUES (1, 'Rex', 'lion', 5, 1), (2, 'Mia', 'lion', 3, 2), (3, 'Zed', 'zebra', 5, 1),
                                  (4, 'Kai', 'zebra ', 7, 2);
    """)
    conn.commit()
    conn.close()
    questions = [
        {"question_id": 0, "db_id": "zoo", "question": "How many lions?", "evidence": "",
         "SQL": "SELECT count(*) FROM animal WHERE species = 'lion'", "difficulty": "simple"},
        {"question_id": 1, "db_id": "zoo", "question": "Names of animals kept by Ana", "evidence": "",
         "SQL": "SELECT a.name FROM animal a JOIN keeper k ON a.keeper_id = k.id WHERE k.name = 'Ana'",
         "difficulty": "moderate"},
        {"question_id": 2, "db_id": "zoo", "question": "Oldest animal's name and age", "evidence": "",
         "SQL": "SELECT name, age FROM animal ORDER BY age DESC LIMIT 1", "difficulty": "challenging"},
    ]
    (tmp_path / "dev.json").write_text(json.dumps(questions))
    return tmp_path


def test_bird_match_is_set_equality():
    assert bird_match([(1, "a"), (1, "a"), (2, "b")], [(2, "b"), (1, "a")])  # duplicates and order ignored
    assert not bird_match([("a", 1)], [(1, "a")])  # column order matters
    assert not bird_match([(0.30000000000000004,)], [(0.3,)])  # no float tolerance
    assert bird_match([], [])


def test_suite_match_bag_permutation_and_order():
    assert suite_match([("a", 1)], [(1, "a")], ordered=False)  # column permutation
    assert not suite_match([(1,), (1,)], [(1,)], ordered=False)  # bags: duplicates count
    assert not suite_match([(2,), (1,)], [(1,), (2,)], ordered=True)
    assert suite_match([(2,), (1,)], [(1,), (2,)], ordered=False)


def test_rves_reward_buckets_and_score():
    assert [ves_reward(g, 1.0) for g in (2.0, 1.5, 0.6, 0.3, 0.1)] == [1.25, 1.0, 0.75, 0.5, 0.25]
    assert rves_score([1.25, 0.0]) == pytest.approx(100 * (math.sqrt(1.25) + 0) / 2)


def test_evaluate_on_bird_fixture(bird_dir):
    examples = load_bird(bird_dir)
    assert [e.difficulty for e in examples] == ["simple", "moderate", "challenging"]
    answers = {
        "0": "SELECT count(*) FROM animal WHERE species = 'lion'",  # correct
        "1": "SELECT a.name FROM animal a JOIN keeper k ON a.keeper_id = k.id WHERE k.name = 'Ana' ORDER BY 1 DESC",
        "2": "SELECT age, name FROM animal ORDER BY age DESC LIMIT 1",  # columns swapped: BIRD says wrong
    }
    outcomes, summary = evaluate(examples, lambda db, e: Prediction(answers[e.question_id], turns=2),
                                 open_database, progress=False, ves_repeats=1)
    assert [o.ex for o in outcomes] == [True, True, False]
    assert [o.test_suite for o in outcomes] == [True, True, True]
    assert summary["overall"]["ex"] == pytest.approx(200 / 3)
    assert summary["simple"]["ex"] == 100 and summary["challenging"]["ex"] == 0
    assert summary["overall"]["mean_turns"] == 2


def test_errors_and_missing_sql_score_zero(bird_dir):
    examples = load_bird(bird_dir)[:2]
    answers = {"0": "SELECT nope FROM animal", "1": None}
    outcomes, summary = evaluate(examples, lambda db, e: Prediction(answers[e.question_id]), open_database,
                                 progress=False)
    assert not any(o.ex for o in outcomes) and summary["overall"]["error_rate"] == 100
    assert outcomes[1].error == "no SQL predicted"


def test_malformed_bird_inputs_are_user_errors(bird_dir, tmp_path):
    with pytest.raises(UserError, match="dev.json is missing"):
        load_bird(tmp_path / "dev_databases")
    (bird_dir / "dev.json").write_text("[{\"db_id\": \"zoo\"")
    with pytest.raises(UserError, match="malformed JSON"):
        load_bird(bird_dir)
    (bird_dir / "dev.json").write_text(json.dumps([{"db_id": "zoo", "question": "q"}]))
    with pytest.raises(UserError, match="lacks"):
        load_bird(bird_dir)
    (bird_dir / "dev.json").write_text(json.dumps([{"db_id": "nowhere", "question": "q", "SQL": "SELECT 1"}]))
    with pytest.raises(UserError, match="not found"):
        load_bird(bird_dir)
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"db": "x", "question": "q", "sql": "s"}\n{oops\n')
    with pytest.raises(UserError, match=":2: malformed"):
        load_questions(bad)
