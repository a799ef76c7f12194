"""`tunelab active run|query|bench`: thin wrappers over the loop, the human loop and the benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tunelab import validate
from tunelab.errors import UserError

app = typer.Typer(no_args_is_help=True,
                  help="Pool-based active learning for text classification (VAPAL and baselines).")


@app.command("run")
def run_command(
    strategy: str = typer.Option("vapal", "--strategy", help="random, entropy, least-confidence, bert-km, badge, "
                                 "coreset, vapal, vapal-alps, vapal-badge, or small-text:<random|entropy|badge|"
                                 "embedding-kmeans>."),
    dataset: str = typer.Option(..., "--dataset", help="debian-sections, stdlib-docs, a CSV/JSONL/Parquet file or a "
                                "Hugging Face dataset name (e.g. ag_news, imdb)."),
    text_column: str = typer.Option("text", "--text-column"),
    label_column: str = typer.Option("label", "--label-column"),
    rounds: int = typer.Option(10, "--rounds", help="Queries after the random initial set."),
    query_size: int = typer.Option(100, "--query-size", help="Labels bought per round."),
    initial_size: int = typer.Option(100, "--initial-size", help="Random initial labels."),
    seed: int = typer.Option(0, "--seed"),
    max_pool: int = typer.Option(5000, "--max-pool", help="Subsample the unlabeled pool (0: all)."),
    max_test: int = typer.Option(1000, "--max-test", help="Subsample the test split (0: all)."),
    encoder: str = typer.Option("all-minilm-l6-v2", "--encoder", help="Embedded encoder, hub id or folder."),
    trainable_layers: int = typer.Option(0, "--trainable-layers", help="0: linear head on cached pooled states; "
                                         "k: fine-tune the last k encoder layers too."),
    max_length: int = typer.Option(128, "--max-length"),
    warm_start: bool = typer.Option(False, "--warm-start", help="Continue from last round's weights."),
    selector: str = typer.Option(None, "--selector", help="VAPAL only: alps or badge."),
    xi: float = typer.Option(None, "--xi", help="VAPAL only: finite-difference step of the power iteration."),
    eps: float = typer.Option(None, "--eps", help="VAPAL only: perturbation norm."),
    power_iterations: int = typer.Option(None, "--power-iterations", help="VAPAL only: K."),
    out: Path = typer.Option(None, "--out", help="Folder for run.json (resumable: rerun to continue)."),
    as_json: bool = typer.Option(False, "--json", help="Print the run record as JSON."),
) -> None:
    """Run active learning with one strategy on one dataset and print the learning curve."""
    for flag, value, low in (("--rounds", rounds, 0), ("--query-size", query_size, 1),
                             ("--initial-size", initial_size, 1), ("--max-pool", max_pool, 0),
                             ("--max-test", max_test, 0), ("--trainable-layers", trainable_layers, 0),
                             ("--max-length", max_length, 2), ("--power-iterations", power_iterations, 1)):
        validate.at_least(flag, value, low)  # before any text is read or encoded
    validate.positive("--xi", xi)
    validate.positive("--eps", eps)
    validate.out_dir(out)
    import torch

    from tunelab.active.bench import strategy_for
    from tunelab.active.classifier import ActiveClassifier, ClassifierConfig
    from tunelab.active.corpus import load_task
    from tunelab.active.loop import LoopConfig, check_budget, run_loop
    from tunelab.active.metrics import aulc, learning_curve
    from tunelab.active.strategies import make_strategy

    torch.set_num_threads(min(torch.get_num_threads(), 4))
    options = {k: v for k, v in {"selector": selector, "xi": xi, "eps": eps,
                                 "power_iterations": power_iterations}.items() if v is not None}
    if options and not strategy.startswith("vapal"):
        raise UserError(f"--{next(iter(options)).replace('_', '-')} applies to VAPAL strategies only")
    if not strategy.startswith("small-text:"):
        make_strategy(strategy, **options)  # fail on a bad name or option before loading anything
    config = LoopConfig(strategy=strategy, rounds=rounds, query_size=query_size, initial_size=initial_size,
                        seed=seed, warm_start=warm_start, strategy_options=options)
    clf_config = ClassifierConfig(encoder=encoder, trainable_layers=trainable_layers, max_length=max_length)
    task = load_task(dataset, text_column=text_column, label_column=label_column, max_pool=max_pool or None,
                     max_test=max_test or None, encoder=encoder, trainable_layers=trainable_layers,
                     max_length=max_length, seed=seed, progress=not as_json)
    check_budget(len(task.pool), config)
    strategy_obj = (strategy_for(strategy, task.num_labels) if strategy.startswith("small-text:")
                    else make_strategy(strategy, **options))
    model = ActiveClassifier.for_encoder(clf_config, task.num_labels)
    record = run_loop(task, model, config, state_path=(out / "run.json") if out else None, strategy=strategy_obj)
    x, acc = learning_curve(record)
    record["aulc_accuracy"] = aulc(x, acc) if len(x) > 1 else None
    if as_json:
        typer.echo(json.dumps(record))
        return
    typer.echo(f"{strategy} on {dataset}: pool {len(task.pool)}, test {len(task.test)}, {task.num_labels} labels")
    typer.echo(f"{'round':>5} {'labels':>7} {'accuracy':>9} {'macro-F1':>9} {'query s':>8}")
    for r in record["rounds"]:
        typer.echo(f"{r['round']:>5} {r['n_labeled']:>7} {r['accuracy']:>9.4f} {r['macro_f1']:>9.4f} "
                   f"{r['query_s']:>8.2f}")
    if record["aulc_accuracy"] is not None:
        typer.echo(f"AULC (accuracy): {record['aulc_accuracy']:.4f}")
    if out:
        typer.echo(f"record: {out / 'run.json'}")


@app.command("query")
def query_command(
    dataset: Path = typer.Option(..., "--dataset", help="The pool to label: JSONL/CSV/Parquet with a text column and "
                                 "an id column (without one, rows are identified by their number from 1)."),
    out: Path = typer.Option(..., "--out", help="JSONL of the rows to label next: id, text, the model's guess and "
                             "its probability (written atomically; a rerun writes the same file)."),
    labeled: Path = typer.Option(None, "--labeled", help="Rows labelled so far (id and label columns), e.g. earlier "
                                 "--out files with a label added; may grow between calls."),
    strategy: str = typer.Option("vapal", "--strategy", help="random (the first batch: needs no labels), entropy, "
                                 "least-confidence, bert-km, badge, coreset, vapal, vapal-alps, vapal-badge."),
    n: int = typer.Option(50, "--n", help="Rows to choose."),
    text_column: str = typer.Option("text", "--text-column"),
    id_column: str = typer.Option("id", "--id-column"),
    label_column: str = typer.Option("label", "--label-column", help="Label column of the --labeled file."),
    labels: str = typer.Option(None, "--labels", help="The label set, comma-separated: labels outside it are "
                               "refused (default: whatever the labelled file holds)."),
    encoder: str = typer.Option("all-minilm-l6-v2", "--encoder", help="Embedded encoder, hub id or folder."),
    trainable_layers: int = typer.Option(0, "--trainable-layers"),
    max_length: int = typer.Option(128, "--max-length"),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print the round's summary as JSON."),
) -> None:
    """Choose the next rows for a person to label, from the labels given so far."""
    validate.at_least("--n", n, 1)
    validate.at_least("--trainable-layers", trainable_layers, 0)
    validate.at_least("--max-length", max_length, 2)
    validate.out_file(out)
    import torch

    from tunelab.active.labelling import parse_label_set
    from tunelab.active.query import QueryConfig, run_query

    torch.set_num_threads(min(torch.get_num_threads(), 4))
    config = QueryConfig(dataset=dataset, out=out, labeled=labeled, strategy=strategy, n=n, text_column=text_column,
                         id_column=id_column, label_column=label_column, labels=parse_label_set(labels),
                         encoder=encoder, trainable_layers=trainable_layers, max_length=max_length, seed=seed)
    summary = run_query(config, progress=not as_json)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"{summary['written']} rows to label in {out} ({strategy}; pool {summary['pool']}, labelled "
               f"{summary['labeled']}, unlabelled {summary['unlabeled']}"
               + (f", labels {', '.join(summary['labels'])})" if summary["labels"] else ")"))
    typer.echo(f"add a '{label_column}' to each row, append them to the labelled file and run again with --labeled")


@app.command("bench")
def bench_command(
    out: Path = typer.Option(Path("benchmarks/active/results"), "--out", help="Folder for results.json and PNGs "
                             "(run states under runs/: rerun to resume)."),
    seeds: int = typer.Option(5, "--seeds", help="Number of seeds (0..n-1)."),
    corpus: list[str] = typer.Option(None, "--corpus", help="Only these corpora (repeatable)."),
    strategy: list[str] = typer.Option(None, "--strategy", help="Only these strategies (repeatable)."),
    rounds: int = typer.Option(10, "--rounds"),
    scale: bool = typer.Option(True, "--scale/--no-scale", help="Also time VAPAL and BADGE on a 20k pool."),
    readme: Path = typer.Option(None, "--readme", help="Write the generated README table here."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Every strategy and small-text's peers, seeds x rounds, per corpus: AULC table and learning curves."""
    import dataclasses

    from tunelab.active.bench import DEFAULT_CORPORA, OURS, PEERS, SCALE_KINDS, run_benchmark

    known = {c.source: c for c in DEFAULT_CORPORA}
    for name in corpus or []:
        if name not in known:
            raise UserError(f"unknown benchmark corpus '{name}': choose one of {', '.join(known)}")
    for name in strategy or []:
        if name not in OURS + PEERS:
            raise UserError(f"unknown benchmark strategy '{name}': choose one of {', '.join(OURS + PEERS)}")
    if seeds < 1 or rounds < 1:
        raise UserError("--seeds and --rounds must be at least 1")
    validate.out_dir(out)
    validate.out_file(readme, "--readme")
    specs = [dataclasses.replace(known[c], rounds=rounds) for c in (corpus or known)]
    results = run_benchmark(out, specs, tuple(strategy or OURS + PEERS), tuple(range(seeds)),
                            scale={"kinds": list(SCALE_KINDS)} if scale else None, readme=readme)
    if as_json:
        typer.echo(json.dumps({k: v for k, v in results.items()}))
    else:
        typer.echo(f"results: {out / 'results.json'}")
