"""`tunelab demo` section: Interactive-T2S with the embedded Qwen2.5-Coder-0.5B on a generated shop database.

Small scale: two questions, the rendered trajectory of the first one, the safety
check (an attack corpus against the read-only engine), and prompt size vs schema width.
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


def run(out_dir: Path) -> list[Section]:
    from tunelab.text2sql.agent import Agent
    from tunelab.text2sql.db import open_database
    from tunelab.text2sql.evaluate import bird_match
    from tunelab.errors import UserError
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
    rows, trajectories = [], []
    with open_database(path) as db:
        box = Toolbox(db, encoder="all-minilm-l6-v2")
        agent = Agent(box, llm)
        for question, gold in QUESTIONS:
            traj = agent.run(question)
            trajectories.append(traj)
            correct = False
            if traj.final_sql:
                try:
                    correct = bird_match(db.execute(traj.final_sql, max_rows=None).rows,
                                         db.execute(gold, max_rows=None).rows)
                except Exception:  # a failing final SQL is simply wrong
                    correct = False
            rows.append([question, traj.final_sql or "(none)", "yes" if correct else "no", traj.model_turns,
                         traj.status, round(traj.wall_s, 1)])
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
    section.add_table(Table(["question", "final SQL", "correct (BIRD EX)", "turns", "stop", "seconds"], rows,
                            caption="Agent answers, judged against gold SQL by set equality of rows"))
    section.add_table(Table(["statement", "outcome"], [list(o) for o in safety["outcomes"]],
                            caption="Attack corpus against the read-only database"))
    section.key_numbers = {"questions": len(rows), "correct": correct, "attacks refused":
                           sum(o[1] != "SUCCEEDED" for o in safety["outcomes"]), "file unchanged": safety["unchanged"]}
    section.results = {"trajectories": [t.to_dict() for t in trajectories], "safety": safety}
    return [section]
