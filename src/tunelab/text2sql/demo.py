"""`tunelab demo` section: Interactive-T2S with the embedded Qwen2.5-Coder-0.5B on a generated shop database.

Small scale: two questions (six with `--full`, each also asked of the one-shot full-schema prompt), the rendered
trajectory of the first one, and the safety check (an attack corpus against the read-only engine).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from tunelab.report import Section, Table

QUESTIONS = [
    ("How many customers live in Lyon?", "SELECT count(*) FROM customers WHERE city = 'Lyon '"),
    ("How many orders were cancelled?", "SELECT count(*) FROM orders WHERE status = 'cancelled'"),
]
MORE_QUESTIONS = [  # `--full`: joins, aggregates and a group-by on the same database
    ("How many orders were placed by customers from Lyon?",
     "SELECT count(*) FROM orders JOIN customers ON orders.customer_id = customers.customer_id "
     "WHERE customers.city = 'Lyon '"),
    ("What is the total quantity ordered of products in the Kitchen category?",
     "SELECT sum(order_items.quantity) FROM order_items JOIN products ON order_items.product_id = "
     "products.product_id WHERE products.category = 'Kitchen'"),
    ("Which region has the most customers?",
     "SELECT regions.name FROM customers JOIN regions ON customers.region_id = regions.region_id "
     "GROUP BY regions.name ORDER BY count(*) DESC LIMIT 1"),
    ("What is the highest price of a product in the Garden category?",
     "SELECT max(price) FROM products WHERE category = 'Garden'"),
]
SCRIPT = [  # used only when the embedded model is not installed
    "Thought: Count the customers of Lyon.\nAction: ExecuteSQL(\"SELECT count(*) FROM customers WHERE city = 'Lyon'\")",
    "Thought: 'cancelled' is a stored status.\nAction: ExecuteSQL(\"SELECT count(*) FROM orders WHERE status = "
    "'cancelled'\")",
]
ATTACKS = ["DROP TABLE orders", "DELETE FROM customers", "UPDATE products SET price = 0",
           "ATTACH DATABASE 'evil.db' AS evil", "PRAGMA query_only = OFF", "VACUUM INTO 'copy.db'",
           "SELECT load_extension('/tmp/evil.so')", "SELECT 1; DROP TABLE orders", "CREATE TEMP TABLE t (x)",
           "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"]


def render_trajectory(traj) -> str:
    lines = [f"Question: {traj.question}"]
    for step in traj.steps:
        observation = step.observation if len(step.observation) < 600 else step.observation[:600] + " ..."
        if step.actor == "controller":
            action = step.action or {}
            arguments = ", ".join(f"{k}={v!r}" for k, v in action.get("arguments", {}).items())
            lines += [f"--- controller: {action.get('name')}({arguments})", f"Observation: {observation}"]
        else:
            lines += [f"--- turn {step.turn} ({step.llm_s:.1f} s, {step.prompt_tokens} prompt tokens)",
                      step.reply.strip(), f"Observation: {observation}"]
    lines.append(f"=== {traj.status}; final SQL: {traj.final_sql}")
    return "\n".join(lines)


def safety_check(path: Path) -> dict:
    from tunelab.text2sql.db import SQLError, open_database

    before = hashlib.sha256(path.read_bytes()).hexdigest()
    outcomes = []
    with open_database(path) as db:
        for sql in ATTACKS:
            try:
                db.execute(sql, timeout_s=1.0)
                outcomes.append((sql, "SUCCEEDED"))
            except SQLError as err:
                outcomes.append((sql, err.kind))
    return {"outcomes": outcomes, "unchanged": hashlib.sha256(path.read_bytes()).hexdigest() == before}


def is_correct(db, sql: str | None, gold: str) -> bool:
    from tunelab.text2sql.evaluate import bird_match

    if not sql:
        return False
    try:
        return bird_match(db.execute(sql, max_rows=None).rows, db.execute(gold, max_rows=None).rows)
    except Exception:  # a failing SQL is simply wrong
        return False


def run(out_dir: Path, full: bool = False) -> list[Section]:
    """Demo scale: two questions; `full`: six, each also asked of the one-shot full-schema prompt."""
    from tunelab.text2sql.agent import Agent
    from tunelab.text2sql.db import open_database
    from tunelab.errors import UserError
    from tunelab.text2sql.baseline import predict_full_schema
    from tunelab.text2sql.llm import ScriptedLLM, TransformersLLM
    from tunelab.text2sql.sample_db import make_shop_database
    from tunelab.text2sql.tools import Toolbox

    out_dir = Path(out_dir)
    path = make_shop_database(out_dir / "shop.sqlite")
    safety = safety_check(path)
    start = time.perf_counter()
    try:
        llm = TransformersLLM("qwen2.5-coder-0.5b-instruct")
        llm_note = ("LLM: the embedded Qwen2.5-Coder-0.5B-Instruct run locally on CPU (greedy; loaded in "
                    f"{time.perf_counter() - start:.0f} s). A 0.5B model is weak at this protocol; the numbers below "
                    "are what it did in this run")
    except UserError as err:  # the model packages are not installed: replay a fixed script instead, and say so
        llm = ScriptedLLM(SCRIPT)
        llm_note = (f"LLM: a SCRIPTED replay of fixed replies, not a model (the embedded Qwen model is unavailable: "
                    f"{err}); its token counts are words")
    scripted = isinstance(llm, ScriptedLLM)
    with_baseline = full and not scripted  # the script has replies for the two default questions only
    questions = QUESTIONS + (MORE_QUESTIONS if with_baseline else [])
    rows, trajectories = [], []
    with open_database(path) as db:
        box = Toolbox(db, encoder="all-minilm-l6-v2")
        agent = Agent(box, llm)
        for question, gold in questions:
            traj = agent.run(question)
            trajectories.append(traj)
            row = [question, traj.final_sql or "(none)", "yes" if is_correct(db, traj.final_sql, gold) else "no",
                   traj.model_turns, traj.status, round(traj.wall_s, 1)]
            if with_baseline:
                one_shot = predict_full_schema(llm, box.schema, question)
                row.append("yes" if is_correct(db, one_shot.sql, gold) else "no")
            rows.append(row)
        box.close()
    correct = sum(r[2] == "yes" for r in rows)
    prose = (
        "Before the model writes SQL, the controller runs SearchColumn, SearchValue and FindShortestPath on the "
        "question and shows the model a compact slice of the schema with the stored spelling of its values and "
        f"ready join conditions; the model's replies are decoded under the action grammar. {llm_note}. At most "
        "6 model turns per question, on a generated shop database (320-column telemetry table, values stored "
        "with trailing spaces such as 'Lyon ').\n\n"
        f"Safety: {sum(o[1] != 'SUCCEEDED' for o in safety['outcomes'])} of {len(ATTACKS)} attack statements "
        f"refused or stopped by the engine; database file bytes unchanged: {safety['unchanged']}.\n\n"
        "Trajectory of the first question:\n" + render_trajectory(trajectories[0]))
    section = Section(title="text2sql: Interactive-T2S agent (Qwen2.5-Coder-0.5B, local)", prose=prose)
    columns = ["question", "final SQL", "correct (BIRD EX)", "turns", "stop", "seconds"]
    caption = "Agent answers, judged against gold SQL by set equality of rows"
    if with_baseline:
        columns.append("one-shot full-schema prompt correct")
        caption += "; last column: the same model given every CREATE TABLE in one prompt"
    section.add_table(Table(columns, rows, caption=caption))
    section.add_table(Table(["statement", "outcome"], [list(o) for o in safety["outcomes"]],
                            caption="Attack corpus against the read-only database"))
    section.key_numbers = {"questions": len(rows), "correct": correct, "attacks refused":
                           sum(o[1] != "SUCCEEDED" for o in safety["outcomes"]), "file unchanged": safety["unchanged"]}
    if with_baseline:
        section.key_numbers["one-shot prompt correct"] = sum(r[-1] == "yes" for r in rows)
    section.results = {"trajectories": [t.to_dict() for t in trajectories], "safety": safety}
    return [section]
