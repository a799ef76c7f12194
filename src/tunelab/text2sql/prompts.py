"""Prompt texts: the table-level start context, the tool instructions with two worked exemplars, and the
full-schema prompt of the single-shot baseline."""

from __future__ import annotations

import json

from tunelab.text2sql.schema import Schema

STOP_SEQUENCES = ["\nObservation", "\nThought", "[END]"]

INSTRUCTIONS = """You answer questions about a {dialect} database by writing SQL step by step.
You see only the list of tables. Use the tools to discover columns, stored values and joins, then run SQL.
Tools (write exactly one Action per turn, as a Python-style call with quoted strings):
- SearchColumn("query") or SearchColumn(["q1", "q2"]): columns matching a description, with their values or ranges.
- SearchValue("text", table=[...], column=[...]): cell values as stored (use them verbatim in SQL, spaces included).
- FindShortestPath("table_or_column", "table_or_column"): the JOIN clauses linking two tables.
- ExecuteSQL("SELECT ..."): run one read-only query and see the result.
- Done(): finish; allowed only after ExecuteSQL returned the answer.
Reply with one "Thought:" line then one "Action:" line, nothing else."""

EXEMPLARS = """Example 1
Tables:
| Table | Primary Key | Foreign Key | Row Count |
|---|---|---|---|
| student | id | student.school_id -> school.id | 5000 |
| school | id |  | 40 |
Question: How many students attend schools in Springfield?
Thought: I need the column with the school's city.
Action: SearchColumn("city of the school")
Observation: Columns for 'city of the school':
- school.city (TEXT); 12 values: 'Shelbyville', 'Springfield ', 'Ogdenville'
Thought: The stored value is 'Springfield ' with a trailing space. I need the join from student to school.
Action: FindShortestPath("student", "school")
Observation: student.school_id = school.id
FROM student
JOIN school ON student.school_id = school.id
Thought: Now I can count.
Action: ExecuteSQL("SELECT count(*) FROM student JOIN school ON student.school_id = school.id WHERE school.city = 'Springfield '")
Observation: count(*)
412
[1 row]
Thought: The result answers the question.
Action: Done()

Example 2
Tables:
| Table | Primary Key | Foreign Key | Row Count |
|---|---|---|---|
| flight | flight_no |  | 900 |
Question: What is the longest flight distance from Boston?
Thought: I need to know how Boston is stored.
Action: SearchValue("Boston", table=["flight"])
Observation: Values for 'Boston':
- flight.origin = 'BOS - Boston'
Thought: The origin column stores 'BOS - Boston'. I need the distance column.
Action: SearchColumn("flight distance")
Observation: Columns for 'flight distance':
- flight.distance_km (INTEGER); min 120, max 9800, 640 distinct
Thought: Now the maximum.
Action: ExecuteSQL("SELECT max(distance_km) FROM flight WHERE origin = 'BOS - Boston'")
Observation: max(distance_km)
5400
[1 row]
Thought: The result answers the question.
Action: Done()"""


COMPACT_INSTRUCTIONS = """You write {dialect} SQL that answers a question about a database.
Reply with one line "Thought: ..." and one line "Action: ..." calling one of:
ExecuteSQL("SELECT ...") runs a query and shows its result.
SearchValue("text") shows how a value is stored.
SearchColumn("description") lists columns matching a description.
FindShortestPath("table1", "table2") gives the join between two tables.
Done() finishes, once a query returned the answer.
Use only the tables and columns shown, stored values exactly as shown, and the join clause shown."""

COMPACT_EXAMPLE = [
    {"role": "user", "content": """Tables (only the relevant ones):
student(id, name, school_id)
school(id, name, city)
Stored values matching the question (use them exactly):
school.city = 'Springfield '
Join clause: FROM student JOIN school ON student.school_id = school.id
Question: How many students attend schools in Springfield?"""},
    {"role": "assistant", "content": "Thought: Count students joined to their school, filtered on the stored city.\n"
                                     "Action: ExecuteSQL(\"SELECT count(*) FROM student JOIN school ON student.school_id "
                                     "= school.id WHERE school.city = 'Springfield '\")"},
]


def tool_call_example() -> list[dict]:
    """COMPACT_EXAMPLE's worked turn as a native tool call and its result, for the tools protocol."""
    sql = "SELECT count(*) FROM student JOIN school ON student.school_id = school.id WHERE school.city = 'Springfield '"
    return [COMPACT_EXAMPLE[0],
            {"role": "assistant", "content": None, "tool_calls": [{"id": "example", "type": "function", "function": {
                "name": "ExecuteSQL", "arguments": json.dumps({"sql": sql})}}]},
            {"role": "tool", "tool_call_id": "example", "content": "count(*)\n42\n[1 row]"}]


def dialect_name(schema: Schema) -> str:
    return {"sqlite": "SQLite", "duckdb": "DuckDB", "postgres": "PostgreSQL"}.get(schema.dialect, schema.dialect)


TOOL_CALL_INSTRUCTIONS = """You write {dialect} SQL that answers a question about a database.
Call exactly one tool per reply: ExecuteSQL runs a query and shows its result; SearchValue shows how a value is
stored; SearchColumn lists columns matching a description; FindShortestPath gives the join between two tables;
Done finishes, once a query returned the answer.
Use only the tables and columns shown, stored values exactly as shown, and the join clause shown."""


def compact_messages(schema: Schema, question: str, context: str, evidence: str = "",
                     example: bool = True, protocol: str = "text") -> list[dict]:
    """The prompt sized for small models: short instructions, one worked turn in the exact action format (as a
    real user/assistant exchange), then the controller's schema slice and the question. With native tool calling
    (`protocol="tools"`) the instructions name the tools and the worked turn is a native tool call."""
    user = f"{context}\nQuestion: {question}" + (f"\nHint: {evidence}" if evidence else "")
    template = TOOL_CALL_INSTRUCTIONS if protocol == "tools" else COMPACT_INSTRUCTIONS
    system = template.format(dialect=dialect_name(schema))
    shown = (tool_call_example() if protocol == "tools" else COMPACT_EXAMPLE) if example else []
    return [{"role": "system", "content": system}, *shown, {"role": "user", "content": user}]


def table_summary(schema: Schema) -> str:
    """The paper's start context: `| Table | Primary Key | Foreign Key | Row Count |`, no column list."""
    lines = ["| Table | Primary Key | Foreign Key | Row Count |", "|---|---|---|---|"]
    for table in schema.tables.values():
        keys = "; ".join(f"{k.table}.{k.column} -> {k.ref_table}.{k.ref_column}"
                         for k in schema.foreign_keys if k.table == table.name)
        lines.append(f"| {table.name} | {', '.join(table.primary_key)} | {keys} | {table.row_count} |")
    return "\n".join(lines)


def agent_messages(schema: Schema, question: str, evidence: str = "") -> list[dict]:
    system = INSTRUCTIONS.format(dialect=dialect_name(schema)) + "\n\n" + EXEMPLARS
    user = f"Tables:\n{table_summary(schema)}\nQuestion: {question}"
    if evidence:
        user += f"\nHint: {evidence}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def create_table_statements(schema: Schema) -> str:
    """Every table with every column, its primary key and its foreign keys, as CREATE TABLE statements."""
    blocks = []
    for table in schema.tables.values():
        lines = [f"  {c.name} {c.type or ''}".rstrip() for c in table.columns]
        if table.primary_key:
            lines.append(f"  PRIMARY KEY ({', '.join(table.primary_key)})")
        for k in schema.foreign_keys:
            if k.table == table.name:
                lines.append(f"  FOREIGN KEY ({k.column}) REFERENCES {k.ref_table}({k.ref_column})")
        blocks.append(f"CREATE TABLE {table.name} (\n" + ",\n".join(lines) + "\n);")
    return "\n".join(blocks)


def full_schema_messages(schema: Schema, question: str, evidence: str = "") -> list[dict]:
    dialect = dialect_name(schema)
    system = (f"You write one {dialect} query that answers the question. Reply with the SQL only, "
              "in a ```sql code block.")
    user = f"Database schema:\n{create_table_statements(schema)}\n\nQuestion: {question}"
    if evidence:
        user += f"\nHint: {evidence}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
