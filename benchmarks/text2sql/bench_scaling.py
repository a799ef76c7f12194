"""Wide-table scaling: prompt tokens against the number of columns (50..1,000), Interactive-T2S vs full schema.

    .venv/bin/python -m benchmarks.text2sql.bench_scaling

For each width a SQLite database is generated with one `telemetry` table of N measurement columns (plus a
`products` table it references). Tokens are counted with the Qwen2.5-Coder tokenizer and its chat template:
- full schema: the baseline's prompt (every CREATE TABLE);
- grounded agent (the default `AgentConfig`): its prompt when the model answers in one ExecuteSQL, i.e. the
  controller's schema slice (relevant columns of the wide table, stored values, join clause) and the worked turn;
- paper's loop (`AgentConfig.paper()`): its first prompt (instructions, two exemplars, the table summary), and the
  prompt at the last turn and the sum over turns of a fixed 4-step trajectory (SearchColumn, SearchValue,
  FindShortestPath, ExecuteSQL) whose observations are the real tool outputs on that database.
The paper's loop ranks columns with BM25 here (no encoder), which does not change the size of its observations; the
grounded agent ranks them with MiniLM, as by default, and the table says whether its slice holds the column and the
value the question needs.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from benchmarks.text2sql.common import RESULTS, data_dir, write_readme
from tunelab.io import atomic_savefig, atomic_write_json, atomic_write_text
from tunelab.report import Table

WIDTHS = [50, 100, 200, 300, 500, 750, 1000]
QUANTITIES = ["temperature", "humidity", "pressure", "voltage", "current", "vibration", "noise", "light", "flow",
              "torque", "speed", "power", "energy", "frequency", "resistance", "capacitance", "density", "viscosity",
              "acidity", "salinity", "turbidity", "oxygen", "nitrogen", "radiation", "altitude"]
PLACES = ["inlet", "outlet", "core", "shell", "motor", "fan", "pump", "valve", "tank", "pipe"]
STATS = ["avg", "max", "min", "std"]
QUESTION = "What is the average maximum pump vibration of readings for Kitchen products?"


def column_names(n: int) -> list[str]:
    names = [f"{q}_{p}_{s}" for q in QUANTITIES for p in PLACES for s in STATS]
    names.remove("vibration_pump_max")
    names.insert(0, "vibration_pump_max")  # the column the question needs exists at every width
    assert n <= len(names)
    return names[:n]


def make_wide_db(path: Path, n: int) -> Path:
    if path.is_file():
        return path
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    cols = column_names(n)
    conn.execute("CREATE TABLE products (product_id INTEGER PRIMARY KEY, name TEXT, category TEXT)")
    conn.execute("CREATE TABLE telemetry (reading_id INTEGER PRIMARY KEY, product_id INTEGER REFERENCES "
                 "products(product_id), " + ", ".join(f"{c} REAL" for c in cols) + ")")
    conn.executemany("INSERT INTO products VALUES (?, ?, ?)",
                     [(i, f"product {i}", ["Kitchen", "Garden", "Office"][i % 3]) for i in range(1, 31)])
    conn.executemany(f"INSERT INTO telemetry VALUES ({', '.join('?' * (n + 2))})",
                     [(r, 1 + r % 30, *[float((r * 7 + j) % 100) for j in range(n)]) for r in range(1, 51)])
    conn.commit()
    conn.close()
    tmp.rename(path)
    return path


def measure(n: int, tokenizer, encoder) -> dict:
    from tunelab.text2sql.actions import parse_action
    from tunelab.text2sql.agent import Agent
    from tunelab.text2sql.agent_config import AgentConfig
    from tunelab.text2sql.db import open_database
    from tunelab.text2sql.llm import ScriptedLLM
    from tunelab.text2sql.prompts import agent_messages, full_schema_messages
    from tunelab.text2sql.tools import Toolbox

    def count(messages) -> int:
        return len(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                 return_dict=True)["input_ids"])

    path = make_wide_db(data_dir() / f"wide_{n}.sqlite", n)
    with open_database(path) as db:
        box = Toolbox(db, encoder=None)
        full = count(full_schema_messages(box.schema, QUESTION))
        start = count(agent_messages(box.schema, QUESTION))
        script = ['Thought: find the column\nAction: SearchColumn("pump vibration max")',
                  'Thought: how is Kitchen stored\nAction: SearchValue("Kitchen")',
                  'Thought: join\nAction: FindShortestPath("telemetry", "products")',
                  "Thought: compute\nAction: ExecuteSQL(\"SELECT avg(t.vibration_pump_max) FROM telemetry t JOIN "
                  "products p ON t.product_id = p.product_id WHERE p.category = 'Kitchen'\")",
                  "Thought: done\nAction: Done()"]
        for reply in script:
            parse_action(reply)
        llm = ScriptedLLM(script)
        traj = Agent(box, llm, AgentConfig.paper()).run(QUESTION)
        per_turn = [count(messages) for messages in llm.calls]
        box.close()
        dense = Toolbox(db, encoder=encoder)  # the default agent ranks columns with MiniLM
        grounded_llm = ScriptedLLM(script[3:4])
        grounded = Agent(dense, grounded_llm).run(QUESTION)
        slice_text = grounded_llm.calls[0][-1]["content"]
        dense.close()
    assert traj.status == "done" and traj.final_sql, traj.status
    assert grounded.status == "answered", grounded.status
    return {"columns": n + 5, "wide_table_columns": n + 2, "full_schema": full,
            "grounded_agent": count(grounded_llm.calls[0]), "agent_start": start,
            "needed_column_shown": "vibration_pump_max" in slice_text and "'Kitchen'" in slice_text,
            "agent_final_turn": per_turn[-1], "agent_cumulative": sum(per_turn), "turns": len(per_turn)}


def main() -> None:
    from tunelab.models import load_tokenizer

    from tunelab.text2sql.tools import load_encoder_or_none

    tokenizer = load_tokenizer("qwen2.5-coder-0.5b-instruct")
    encoder = load_encoder_or_none("all-minilm-l6-v2")
    rows = [measure(n, tokenizer, encoder) for n in WIDTHS]
    for r in rows:
        r["ratio_full_over_grounded_agent"] = r["full_schema"] / r["grounded_agent"]
        r["ratio_full_over_agent_start"] = r["full_schema"] / r["agent_start"]
        r["ratio_full_over_agent_final_turn"] = r["full_schema"] / r["agent_final_turn"]
    atomic_write_json(RESULTS / "scaling.json", {"tokenizer": "qwen2.5-coder-0.5b-instruct", "question": QUESTION,
                                                 "rows": rows})
    report(json.loads((RESULTS / "scaling.json").read_text()))


def report(data: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = data["rows"]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    x = [r["columns"] for r in rows]
    for key, label in (("full_schema", "full schema (baseline)"), ("grounded_agent", "grounded agent (default)"),
                       ("agent_start", "paper's loop: first prompt"),
                       ("agent_final_turn", "paper's loop: last prompt of a 4-step run")):
        ax.plot(x, [r[key] for r in rows], marker="o", label=label)
    ax.set_xlabel("columns in the database")
    ax.set_ylabel("prompt tokens (Qwen2.5 tokenizer)")
    ax.set_yscale("log")
    ax.legend()
    atomic_savefig(fig, RESULTS / "scaling.png")
    plt.close(fig)
    text = scaling_markdown(data)
    atomic_write_text(RESULTS / "scaling.md", text)
    write_readme()
    print(text)


def scaling_markdown(data: dict) -> str:
    """results/scaling.md from results/scaling.json."""
    rows = data["rows"]
    table = Table(["columns", "full schema", "grounded agent", "full / grounded",
                   "slice has the needed column and value", "paper's loop: first prompt", "last prompt",
                   "cumulative (5 calls)"],
                  [[r["columns"], r["full_schema"], r["grounded_agent"], f"{r['ratio_full_over_grounded_agent']:.2f}",
                    "yes" if r["needed_column_shown"] else "NO", r["agent_start"], r["agent_final_turn"],
                    r["agent_cumulative"]] for r in rows])
    return ("### Prompt tokens vs columns (`bench_scaling.py`)\n\nOne wide table of N columns plus a 3-column "
            "table; tokens of the Qwen2.5-Coder chat prompt. Neither agent lists every column: the grounded agent "
            "shows the relevant ones, the paper's loop none (its last prompt includes the observations of a fixed "
            "4-step trajectory run with the real tools).\n\n"
            + table.to_markdown() + "\n\n![scaling](results/scaling.png)\n")


if __name__ == "__main__":
    main()
