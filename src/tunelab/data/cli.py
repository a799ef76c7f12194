"""`tunelab data info`: what a dataset holds (built-in corpus, file or hub name)."""

from __future__ import annotations

import json

import typer

from tunelab.data.corpora import BUILTIN_CORPORA

app = typer.Typer(no_args_is_help=True)


@app.command("info")
def info(
    source: str = typer.Argument(..., help=f"A built-in corpus ({', '.join(BUILTIN_CORPORA)}), a .jsonl/.csv/"
                                           ".tsv/.parquet file, or a Hugging Face dataset name."),
    text_column: str = typer.Option("text", help="Column holding the text."),
    label_column: str = typer.Option("label", help="Column holding the label."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Size, labels and label counts of a labeled-text dataset."""
    from tunelab.data.labeled import load_labeled_text

    ds = load_labeled_text(source, text_column=text_column, label_column=label_column)
    train, test = ds.train_test_split(0.2)
    summary = {"name": ds.name, "texts": len(ds), "labels": ds.num_labels, "label_counts": ds.label_counts(),
               "train": len(train), "test": len(test),
               "median_words": int(sorted(len(t.split()) for t in ds.texts)[len(ds) // 2])}
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(f"{ds.name}: {len(ds):,} texts, {ds.num_labels} labels, median {summary['median_words']} words; "
               f"hash split 80/20 -> {len(train):,} / {len(test):,}")
    for name, count in sorted(summary["label_counts"].items(), key=lambda kv: -kv[1]):
        typer.echo(f"  {count:7,d}  {name}")
