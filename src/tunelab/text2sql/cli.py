"""`tunelab sql`: ask a database a question with the Interactive-T2S agent, evaluate, build the value index."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tunelab import validate
from tunelab.errors import UserError

app = typer.Typer(help="Interactive-T2S: a tool-using LLM agent that writes SQL against a read-only database.",
                  no_args_is_help=True)

INDEX_DIR_HELP = "Folder for SearchValue's value index (default: $TUNELAB_T2S_INDEX_DIR, else the tunelab cache)."
MODEL_HELP = "Local model (embedded name, folder, hub id) or, with --base-url, the endpoint's model name."


def make_llm(model: str, base_url: str | None, threads: int | None):
    from tunelab.text2sql.llm import make_llm as build

    return build(model, base_url, threads)


def agent_config(style: str, **settings):
    """The AgentConfig of a style, with the options the user set (None: the style's default)."""
    from tunelab.text2sql.agent_config import STYLES, AgentConfig

    if style not in STYLES:
        raise UserError(f"unknown style '{style}': use {' or '.join(STYLES)}")
    chosen = {k: v for k, v in settings.items() if v is not None}
    return AgentConfig.paper(**chosen) if style == "paper" else AgentConfig(**chosen)


def format_step(step) -> str:
    """One trajectory step as `sql ask` prints it: who acted, why (a controller step), the call and its observation."""
    if step.actor == "controller":
        why = f" ({step.reply})" if step.reply else ""
        return f"--- controller{why}: {_call(step.action)}\nObservation: {step.observation}"
    via = f", {step.call_format} call" if step.call_format else ""
    said = step.reply.strip()
    if step.call_format == "native":  # the call is not in the reply's text
        said = f"{said}\nAction: {_call(step.action)}".strip()
    return f"--- turn {step.turn} ({step.llm_s:.1f} s{via})\n{said}\nObservation: {step.observation}"


def _call(action: dict) -> str:
    arguments = ", ".join(f"{k}={v!r}" for k, v in action["arguments"].items())
    return f"{action['name']}({arguments})"


def _open(db: str | Path):
    """A database file, or a PostgreSQL URL (`postgresql://user@host:port/dbname`, `postgresql:` for PG* variables)."""
    from tunelab.text2sql.db import is_postgres_url, open_database

    return open_database(db if is_postgres_url(str(db)) else Path(db))


@app.command()
def ask(
    question: str = typer.Argument(..., help="The question, in natural language."),
    db: str = typer.Option(..., "--db", help="SQLite or DuckDB file, or a postgresql:// URL (opened read-only)."),
    model: str = typer.Option("qwen2.5-coder-0.5b-instruct", "--model", help=MODEL_HELP),
    base_url: str = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint (key from OPENAI_API_KEY)."),
    protocol: str = typer.Option("auto", "--protocol",
                                 help="text (Thought/Action lines), tools (the endpoint's native tool calling, text as "
                                      "fallback) or auto: tools with --base-url and --style paper, else text."),
    style: str = typer.Option("compact", "--style",
                              help="compact (small models: controller grounding, short prompt) or paper (the "
                                   "paper's prompt; the model plans every search: for large models)."),
    max_turns: int = typer.Option(None, "--max-turns", min=1, help="Model replies per question (default: the style's)."),
    budget_s: float = typer.Option(None, "--budget-s", help="Wall-clock budget for the whole question (default none)."),
    encoder: str = typer.Option("all-minilm-l6-v2", "--encoder", help="SearchColumn encoder; 'none' for BM25."),
    index_dir: Path = typer.Option(None, "--index-dir", help=INDEX_DIR_HELP),
    trajectory: Path = typer.Option(None, "--trajectory", help="Write the full trajectory (JSON) here."),
    threads: int = typer.Option(None, "--threads", help="CPU threads for a local model."),
    as_json: bool = typer.Option(False, "--json", help="Print the trajectory as JSON instead of the steps."),
) -> None:
    """Answer QUESTION step by step; prints each step as it happens, then the SQL and its result."""
    from tunelab.io import atomic_write_text
    from tunelab.text2sql.agent import Agent
    from tunelab.text2sql.tools import Toolbox

    if not question.strip():
        raise UserError("the question is empty")
    if protocol not in ("auto", "text", "tools"):
        raise UserError(f"unknown protocol '{protocol}': use auto, text or tools")
    if protocol == "auto":  # measured: a 0.5B model misuses native tool calls but follows the compact text turns
        protocol = "tools" if base_url and style == "paper" else "text"
    if protocol == "tools" and not base_url:
        raise UserError("--protocol tools needs an endpoint with native tool calling (--base-url)")
    validate.positive("--budget-s", budget_s)
    validate.at_least("--threads", threads, 1)
    validate.out_file(trajectory, "--trajectory")
    validate.out_dir(index_dir, "--index-dir")
    config = agent_config(style, protocol=protocol, max_turns=max_turns, budget_s=budget_s)
    with _open(db) as database:
        from tunelab.text2sql.schema import introspect

        found = introspect(database)
        if not found.tables:
            raise UserError(f"{db} has no tables to ask about")
        box = Toolbox(database, schema=found, encoder=None if encoder.lower() == "none" else encoder,
                      index_dir=index_dir)
        llm = make_llm(model, base_url, threads)

        def show(step) -> None:
            if not as_json:
                typer.echo(format_step(step))

        traj = Agent(box, llm, config, on_step=show).run(question)
        box.close()
        if trajectory:
            atomic_write_text(trajectory, traj.to_json())
        if as_json:
            typer.echo(traj.to_json())
            return
        typer.echo(f"=== {traj.status} after {traj.model_turns} turns, {traj.prompt_tokens} prompt + "
                   f"{traj.completion_tokens} completion tokens, {traj.wall_s:.1f} s")
        if traj.error and traj.final_sql is None:  # e.g. the endpoint is down: a bad --base-url or --model
            raise UserError(f"no answer: {traj.error}")
        if traj.error:
            typer.echo(f"LLM error: {traj.error}", err=True)
        if traj.final_sql is None:
            typer.echo("no SQL answer")
            raise typer.Exit(1)
        from tunelab.text2sql.db import format_rows

        typer.echo(f"SQL: {traj.final_sql}")
        typer.echo(format_rows(database.execute(traj.final_sql)))


@app.command()
def index(
    db: str = typer.Option(..., "--db", help="SQLite or DuckDB file, or a postgresql:// URL."),
    out: Path = typer.Option(None, "--out", help="Index file (default: one per database in --index-dir)."),
    index_dir: Path = typer.Option(None, "--index-dir", help=INDEX_DIR_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Build (or reuse) SearchValue's persistent value index for a database."""
    validate.out_file(out)
    if out is None and index_dir is not None:
        validate.out_dir(index_dir, "--index-dir")
    from tunelab.text2sql.schema import introspect
    from tunelab.text2sql.value_index import ValueIndex

    with _open(db) as database:
        schema = introspect(database)
        idx = ValueIndex.open_or_build(database, schema, out, index_dir=index_dir)
        info = {**idx.meta(), "index": str(idx.path)}
        idx.close()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
    else:
        typer.echo(f"{info['values']:,} values from {info['columns']} text columns in {info['index']} "
                   f"(built in {info['build_s']:.1f} s)")


@app.command()
def schema(
    db: str = typer.Option(..., "--db", help="SQLite or DuckDB file, or a postgresql:// URL."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The agent's start context: tables, primary keys, foreign keys (declared or inferred), row counts."""
    from tunelab.io import to_jsonable
    from tunelab.text2sql.prompts import table_summary
    from tunelab.text2sql.schema import introspect

    with _open(db) as database:
        found = introspect(database)
    if as_json:
        typer.echo(json.dumps(to_jsonable({"tables": found.tables, "foreign_keys": found.foreign_keys}), indent=2))
    else:
        typer.echo(table_summary(found))
        inferred = [k.render() for k in found.foreign_keys if k.inferred]
        if inferred:
            typer.echo(f"({len(inferred)} foreign keys inferred: the database declares none)")


@app.command("eval")
def evaluate_command(
    bird: Path = typer.Option(None, "--bird", help="BIRD folder (dev.json + dev_databases/)."),
    questions: Path = typer.Option(None, "--questions", help="Question file (JSON/JSONL: db, question, sql)."),
    method: str = typer.Option("agent", "--method", help="agent or baseline (full schema, single shot)."),
    style: str = typer.Option("compact", "--style", help="The agent's style: compact or paper (see `sql ask`)."),
    model: str = typer.Option("qwen2.5-coder-0.5b-instruct", "--model", help=MODEL_HELP),
    base_url: str = typer.Option(None, "--base-url"),
    limit: int = typer.Option(None, "--limit", min=1, help="Evaluate only the first N questions."),
    out: Path = typer.Option(None, "--out", help="Folder for outcomes.json and summary.json (with --bird also "
                                                 "predict_dev.json, BIRD's submission format)."),
    threads: int = typer.Option(None, "--threads"),
    ves_repeats: int = typer.Option(0, "--ves-repeats", help="Timing repeats for R-VES (0: single timing)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """BIRD-exact execution accuracy (EX, by difficulty), error rate, turns, tokens and latency."""
    from tunelab.io import atomic_write_json, staged_dir, to_jsonable
    from tunelab.text2sql.agent import Agent
    from tunelab.text2sql.baseline import predict_full_schema
    from tunelab.text2sql.db import open_database
    from tunelab.text2sql.evaluate import Prediction, evaluate, load_bird, load_questions
    from tunelab.text2sql.tools import Toolbox, load_encoder_or_none

    if (bird is None) == (questions is None):
        raise UserError("give exactly one of --bird DIR or --questions FILE")
    if method not in ("agent", "baseline"):
        raise UserError(f"unknown method '{method}': use agent or baseline")
    validate.at_least("--ves-repeats", ves_repeats, 0)
    validate.at_least("--threads", threads, 1)
    validate.out_dir(out)
    if questions is not None:
        validate.in_file(questions, "--questions")
    else:
        validate.in_dir(bird, "--bird")
    config = agent_config(style)
    examples = load_bird(bird) if bird else load_questions(questions)
    if not examples:
        raise UserError("no questions to evaluate")
    examples = examples[:limit] if limit else examples
    llm = make_llm(model, base_url, threads)
    encoder = load_encoder_or_none("all-minilm-l6-v2") if method == "agent" else None
    boxes: dict[str, Toolbox] = {}

    def predict(db, example) -> Prediction:
        if str(db.path) not in boxes:
            boxes[str(db.path)] = Toolbox(db, encoder=encoder)
        box = boxes[str(db.path)]
        if method == "baseline":
            return predict_full_schema(llm, box.schema, example.question, example.evidence)
        traj = Agent(box, llm, config).run(example.question, example.evidence)
        return Prediction(traj.final_sql, traj.model_turns, traj.prompt_tokens, traj.completion_tokens, traj.wall_s,
                          traj.status, traj.to_dict())

    outcomes, summary = evaluate(examples, predict, open_database, ves_repeats=ves_repeats)
    if out:
        with staged_dir(out) as tmp:
            atomic_write_json(tmp / "outcomes.json", outcomes)
            atomic_write_json(tmp / "summary.json", {"method": method, "model": model, **summary})
            if bird:  # BIRD's own submission format, scored by `sql score` or BIRD's scripts
                from tunelab.text2sql.evaluate import bird_predictions

                atomic_write_json(tmp / "predict_dev.json", bird_predictions(examples, [o.pred_sql for o in outcomes]))
    if as_json:
        typer.echo(json.dumps(to_jsonable({"method": method, "model": model, **summary}), indent=2))
        return
    for bucket, numbers in summary.items():
        if numbers.get("n"):
            typer.echo(f"{bucket:12s} n={numbers['n']:4d}  EX {numbers['ex']:5.1f}  test-suite {numbers['test_suite']:5.1f}"
                       f"  R-VES {numbers['r_ves']:5.1f}  errors {numbers['error_rate']:5.1f}%  turns "
                       f"{numbers['mean_turns']:.1f}  tokens {numbers['mean_prompt_tokens']:.0f}+"
                       f"{numbers['mean_completion_tokens']:.0f}  latency {numbers['median_latency_s']:.1f} s")


@app.command("score")
def score_command(
    predictions: Path = typer.Option(..., "--predictions",
                                     help="BIRD predictions from any system (predict_dev.json: "
                                          "{\"0\": \"SQL\\t----- bird -----\\tdb_id\", ...})."),
    bird: Path = typer.Option(..., "--bird", help="BIRD folder (dev.json + dev_databases/)."),
    limit: int = typer.Option(None, "--limit", min=1, help="Score only the first N questions."),
    out: Path = typer.Option(None, "--out", help="Folder for outcomes.json and summary.json."),
    ves_repeats: int = typer.Option(0, "--ves-repeats", help="Timing repeats for R-VES (0: single timing)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Score predicted SQL with BIRD-exact EX (by difficulty) and R-VES; a question with no prediction scores 0."""
    validate.in_file(predictions, "--predictions")
    validate.in_dir(bird, "--bird")
    validate.at_least("--ves-repeats", ves_repeats, 0)
    validate.out_dir(out)
    from tunelab.io import atomic_write_json, staged_dir, to_jsonable
    from tunelab.text2sql.db import open_database
    from tunelab.text2sql.evaluate import load_bird, load_bird_predictions, score_predictions

    examples = load_bird(bird)
    if not examples:
        raise UserError(f"{bird}: dev.json has no questions")
    found = load_bird_predictions(predictions, examples)
    examples = examples[:limit] if limit else examples
    outcomes, summary = score_predictions(examples, found, open_database, ves_repeats=ves_repeats)
    report = {"predictions": str(predictions), "missing": sum(o.pred_sql is None for o in outcomes), **summary}
    if out:
        with staged_dir(out) as tmp:
            atomic_write_json(tmp / "outcomes.json", outcomes)
            atomic_write_json(tmp / "summary.json", report)
    if as_json:
        typer.echo(json.dumps(to_jsonable(report), indent=2))
        return
    for bucket, numbers in summary.items():
        if numbers.get("n"):
            typer.echo(f"{bucket:12s} n={numbers['n']:4d}  EX {numbers['ex']:5.1f}  test-suite "
                       f"{numbers['test_suite']:5.1f}  R-VES {numbers['r_ves']:5.1f}  errors "
                       f"{numbers['error_rate']:5.1f}%")
    if report["missing"]:
        typer.echo(f"({report['missing']} questions had no prediction and score 0)")


@app.command("mcp")
def mcp_command(
    db: str = typer.Option(..., "--db", help="SQLite or DuckDB file (opened read-only), or a postgresql:// URL."),
    transport: str = typer.Option("stdio", "--transport",
                                  help="stdio (the MCP client starts this command) or http (streamable HTTP at "
                                       "http://HOST:PORT/mcp)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on with --transport http."),
    port: int = typer.Option(8000, "--port", help="Port to listen on with --transport http."),
    encoder: str = typer.Option("all-minilm-l6-v2", "--encoder", help="SearchColumn encoder; 'none' for BM25."),
    timeout_s: float = typer.Option(30.0, "--timeout-s", help="Wall-clock limit of one ExecuteSQL query."),
    max_rows: int = typer.Option(20, "--max-rows", help="Rows ExecuteSQL returns (the total is always counted)."),
) -> None:
    """Serve the agent's tools (SearchColumn, SearchValue, FindShortestPath, ExecuteSQL) and the schema summary to
    any MCP client, read-only."""
    from tunelab.text2sql.mcp_server import TRANSPORTS

    validate.one_of("--transport", transport, TRANSPORTS)
    validate.between("--port", port, 1, 65535)
    validate.positive("--timeout-s", timeout_s)
    validate.at_least("--max-rows", max_rows, 1)
    from tunelab.text2sql.mcp_server import serve

    serve(db, transport=transport, host=host, port=port, encoder=None if encoder.lower() == "none" else encoder,
          timeout_s=timeout_s, max_rows=max_rows)
