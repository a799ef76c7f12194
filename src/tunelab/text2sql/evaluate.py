"""Evaluation: BIRD-format loading, BIRD-exact execution accuracy (EX), R-VES, and a Spider test-suite style
comparator.

BIRD EX: gold and predicted SQL run on the same database; correct iff `set(pred_rows) == set(gold_rows)` (row
order and duplicates ignored, column order matters, no float tolerance); an error or a timeout (30 s) scores 0.

BIRD files: `predict_dev.json` maps each question's index in dev.json ("0", "1", ...) to
`SQL<tab>----- bird -----<tab>db_id`, the format BIRD's own evaluation scripts read; `bird_predictions` writes it and
`load_bird_predictions` reads (and checks) one made by any system.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from tunelab.data import read_records
from tunelab.errors import UserError
from tunelab.text2sql.db import Database, SQLError

BIRD_TIMEOUT_S = 30.0
DIFFICULTIES = ("simple", "moderate", "challenging")


@dataclasses.dataclass
class Example:
    question_id: str
    db_path: Path
    question: str
    gold_sql: str
    evidence: str = ""
    difficulty: str = "simple"
    db_id: str = ""


# ============================================================================ loading

def _read_json_list(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror}") from err
    if path.suffix == ".jsonl":
        return read_records(path)  # names the line of a malformed record
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: malformed JSON at line {err.lineno} ({err.msg})") from err
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of questions")
    return data


def load_bird(directory: str | Path, split: str = "dev") -> list[Example]:
    """BIRD layout: `<dir>/<split>.json` and `<dir>/<split>_databases/<db_id>/<db_id>.sqlite`."""
    directory = Path(directory)
    questions = directory / f"{split}.json"
    if not questions.is_file():
        raise UserError(f"{directory} is not a BIRD folder: {questions.name} is missing")
    examples = []
    for i, item in enumerate(_read_json_list(questions)):
        if not isinstance(item, dict) or not all(k in item for k in ("db_id", "question", "SQL")):
            raise UserError(f"{questions}: entry {i} lacks db_id, question or SQL")
        db_path = directory / f"{split}_databases" / item["db_id"] / f"{item['db_id']}.sqlite"
        if not db_path.is_file():
            raise UserError(f"database for db_id '{item['db_id']}' not found at {db_path}")
        examples.append(Example(str(item.get("question_id", i)), db_path, item["question"], item["SQL"],
                                item.get("evidence", "") or "", item.get("difficulty", "simple") or "simple",
                                str(item["db_id"])))
    return examples


def load_questions(path: str | Path) -> list[Example]:
    """tunelab's question files (JSON list or JSONL): {id, db, question, sql, evidence?, difficulty?}; `db` is a
    path relative to the file, or a postgresql:// URL."""
    from tunelab.text2sql.db import is_postgres_url

    path = Path(path)
    examples = []
    for i, item in enumerate(_read_json_list(path)):
        if not isinstance(item, dict) or not all(k in item for k in ("db", "question", "sql")):
            raise UserError(f"{path}: entry {i} lacks db, question or sql")
        db_path = item["db"] if is_postgres_url(item["db"]) else (path.parent / item["db"]).resolve()
        examples.append(Example(str(item.get("id", i)), db_path, item["question"], item["sql"],
                                item.get("evidence", ""), item.get("difficulty", "simple")))
    return examples


# ============================================================================ BIRD prediction files

BIRD_SEPARATOR = "\t----- bird -----\t"
BIRD_FORMAT = '"SQL\\t----- bird -----\\tdb_id"'  # how messages write an entry


def bird_predictions(examples: list[Example], sqls: list[str | None]) -> dict[str, str]:
    """BIRD's `predict_dev.json`: {"<index in dev.json>": "SQL<tab>----- bird -----<tab>db_id"}; `examples` are
    load_bird's, in file order (a prefix when evaluation was limited). The SQL is kept exactly (JSON escapes its
    newlines); no prediction is written as empty SQL, which scores 0 here (BIRD's script would execute it)."""
    return {str(i): f"{sql or ''}{BIRD_SEPARATOR}{_db_id(example)}"
            for i, (example, sql) in enumerate(zip(examples, sqls, strict=True))}


def _db_id(example: Example) -> str:
    return example.db_id or example.db_path.parent.name


def load_bird_predictions(path: str | Path, examples: list[Example]) -> dict[int, str | None]:
    """Predictions by question index from a BIRD `predict_dev.json`; UserError (naming the entry) for a file that
    is not one, an index beyond the questions, or a db_id that is not the question's (a file made for another
    split or ordering). A null value is a missing prediction."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {path}: {getattr(err, 'strerror', None) or err}") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: malformed JSON at line {err.lineno} ({err.msg})") from err
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object mapping \"0\", \"1\", ... to {BIRD_FORMAT} "
                        "(BIRD's predict_dev.json)")
    predictions: dict[int, str | None] = {}
    for key, value in data.items():
        if not (isinstance(key, str) and key.isascii() and key.isdigit()):
            raise UserError(f"{path}: key {key!r} is not a question index (\"0\", \"1\", ...)")
        index = int(key)
        if index >= len(examples):
            raise UserError(f"{path}: prediction {key} but the BIRD folder has {len(examples)} questions")
        if value is None:
            predictions[index] = None
            continue
        if not isinstance(value, str) or BIRD_SEPARATOR not in value:
            raise UserError(f"{path}: prediction {key} is not {BIRD_FORMAT}")
        sql, db_id = value.rsplit(BIRD_SEPARATOR, 1)
        expected = _db_id(examples[index])
        if db_id.strip() != expected:
            raise UserError(f"{path}: prediction {key} is for db_id '{db_id.strip()}' but question {key} is on "
                            f"'{expected}' (a file for another split or order?)")
        predictions[index] = sql.strip() or None
    return predictions


# ============================================================================ comparison (pure)

def bird_match(pred_rows: list[tuple], gold_rows: list[tuple]) -> bool:
    """BIRD's exact rule: rows compared as sets."""
    return set(map(tuple, pred_rows)) == set(map(tuple, gold_rows))


def has_order_by(sql: str) -> bool:
    return re.search(r"\border\s+by\b", sql, re.IGNORECASE) is not None


def suite_match(pred_rows: list[tuple], gold_rows: list[tuple], ordered: bool, max_permute: int = 6) -> bool:
    """Spider test-suite style: a bag of rows (duplicates count), any permutation of the predicted columns,
    row order compared only when the gold query orders."""
    if len(pred_rows) != len(gold_rows):
        return False
    if not gold_rows:
        return True
    width = len(gold_rows[0])
    if any(len(r) != width for r in pred_rows):
        return False
    orders = itertools.permutations(range(width)) if width <= max_permute else [tuple(range(width))]
    gold_bag = Counter(map(tuple, gold_rows))
    for perm in orders:
        permuted = [tuple(row[i] for i in perm) for row in pred_rows]
        if (permuted == [tuple(r) for r in gold_rows]) if ordered else Counter(permuted) == gold_bag:
            return True
    return False


def ves_reward(gold_time: float, pred_time: float) -> float:
    """BIRD R-VES reward from the time ratio gold / predicted."""
    ratio = gold_time / max(pred_time, 1e-9)
    if ratio >= 2:
        return 1.25
    if ratio >= 1:
        return 1.0
    if ratio >= 0.5:
        return 0.75
    if ratio >= 0.25:
        return 0.5
    return 0.25


def rves_score(rewards: list[float]) -> float:
    """mean(sqrt(reward)) * 100, with reward 0 for wrong answers."""
    return 100.0 * sum(math.sqrt(r) for r in rewards) / len(rewards) if rewards else float("nan")


# ============================================================================ running

@dataclasses.dataclass
class Prediction:
    sql: str | None
    turns: int = 1
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    status: str = "done"
    trajectory: dict | None = None


@dataclasses.dataclass
class Outcome:
    question_id: str
    difficulty: str
    question: str
    gold_sql: str
    pred_sql: str | None
    ex: bool
    test_suite: bool
    error: str | None
    reward: float
    turns: int
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    status: str


def run_rows(db: Database, sql: str, timeout_s: float) -> tuple[list[tuple], float]:
    result = db.execute(sql, timeout_s=timeout_s, max_rows=None)
    return result.rows, result.elapsed_s


def judge(db: Database, example: Example, prediction: Prediction, timeout_s: float = BIRD_TIMEOUT_S,
          ves_repeats: int = 0) -> Outcome:
    try:
        gold_rows, gold_time = run_rows(db, example.gold_sql, timeout_s)
    except SQLError as err:  # a broken gold query is the dataset's bug, not the prediction's
        raise UserError(f"the gold SQL of question {example.question_id} fails ({err.kind}: {err})") from err
    ex = suite = False
    error = None
    reward = 0.0
    if not prediction.sql:
        error = "no SQL predicted"
    else:
        try:
            pred_rows, pred_time = run_rows(db, prediction.sql, timeout_s)
            ex = bird_match(pred_rows, gold_rows)
            suite = suite_match(pred_rows, gold_rows, has_order_by(example.gold_sql))
            if ex:
                if ves_repeats:
                    gold_time = statistics.median(run_rows(db, example.gold_sql, timeout_s)[1] for _ in range(ves_repeats))
                    pred_time = statistics.median(run_rows(db, prediction.sql, timeout_s)[1] for _ in range(ves_repeats))
                reward = ves_reward(gold_time, pred_time)
        except SQLError as err:
            error = f"{err.kind}: {err}"
    return Outcome(example.question_id, example.difficulty, example.question, example.gold_sql, prediction.sql, ex,
                   suite, error, reward, prediction.turns, prediction.prompt_tokens, prediction.completion_tokens,
                   prediction.latency_s, prediction.status)


def summarize(outcomes: list[Outcome]) -> dict:
    def block(items: list[Outcome]) -> dict:
        n = len(items)
        if not n:
            return {"n": 0}
        return {
            "n": n,
            "ex": 100.0 * sum(o.ex for o in items) / n,
            "test_suite": 100.0 * sum(o.test_suite for o in items) / n,
            "r_ves": rves_score([o.reward for o in items]),
            "error_rate": 100.0 * sum(o.error is not None for o in items) / n,
            "mean_turns": statistics.fmean(o.turns for o in items),
            "mean_prompt_tokens": statistics.fmean(o.prompt_tokens for o in items),
            "mean_completion_tokens": statistics.fmean(o.completion_tokens for o in items),
            "median_latency_s": statistics.median(o.latency_s for o in items),
        }

    summary = {"overall": block(outcomes)}
    for difficulty in DIFFICULTIES:
        summary[difficulty] = block([o for o in outcomes if o.difficulty == difficulty])
    return summary


def evaluate(examples: list[Example], predict: Callable[[Database, Example], Prediction],
             open_db: Callable[[Path], Database], timeout_s: float = BIRD_TIMEOUT_S, ves_repeats: int = 0,
             progress: bool = True) -> tuple[list[Outcome], dict]:
    """Predict and judge every example; databases are opened once each."""
    from tunelab.progress import track

    opened: dict[Path, Database] = {}
    outcomes = []
    try:
        items = track(examples, "evaluating") if progress else examples
        for example in items:
            if example.db_path not in opened:
                opened[example.db_path] = open_db(example.db_path)
            db = opened[example.db_path]
            start = time.perf_counter()
            prediction = predict(db, example)
            if not prediction.latency_s:
                prediction.latency_s = time.perf_counter() - start
            outcomes.append(judge(db, example, prediction, timeout_s, ves_repeats))
    finally:
        for db in opened.values():
            db.close()
    return outcomes, summarize(outcomes)


def score_predictions(examples: list[Example], predictions: dict[int, str | None], open_db: Callable[[Path], Database],
                      timeout_s: float = BIRD_TIMEOUT_S, ves_repeats: int = 0,
                      progress: bool = True) -> tuple[list[Outcome], dict]:
    """Judge SQL predicted by any system (by question index, e.g. from `load_bird_predictions`) with the same
    BIRD-exact EX and R-VES as `evaluate`; a question without a prediction scores 0."""
    index = {id(example): i for i, example in enumerate(examples)}

    def predict(db: Database, example: Example) -> Prediction:
        sql = predictions.get(index[id(example)])
        return Prediction(sql, turns=0, status="scored" if sql else "missing")

    outcomes, _ = evaluate(examples, predict, open_db, timeout_s, ves_repeats, progress)
    for outcome in outcomes:
        outcome.latency_s = 0.0  # the predicting system's latency is unknown
    return outcomes, summarize(outcomes)
