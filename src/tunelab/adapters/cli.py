"""`tunelab adapters`: train a LoRA / DoRA / BoRA classifier, and measure step time and memory on a causal LM."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tunelab import validate
from tunelab.errors import UserError

app = typer.Typer(no_args_is_help=True, help="Parameter-efficient fine-tuning: BoRA against PEFT's LoRA and DoRA.")


def _check_out(out: Path | None) -> None:
    validate.out_dir(out)
    if out is not None and out.exists() and any(out.iterdir()):
        raise UserError(f"output folder '{out}' is not empty")


def _check_labels(data: str, labels) -> None:
    """A classifier needs two labels present; one label (or none) trains a constant and reports a perfect score."""
    import numpy as np

    present = np.unique(labels)
    if len(present) < 2:
        raise UserError(f"{data}: the data holds {len(present)} distinct label(s); a classifier needs at least two "
                        "labels")


@app.command()
def train(
    adapter: str = typer.Option("bora", help="lora | dora | bora"),
    data: str = typer.Option("debian-sections", help="built-in corpus, a CSV/JSONL/Parquet file or a dataset name"),
    text_column: str = typer.Option("text"),
    label_column: str = typer.Option("label"),
    encoder: str = typer.Option("all-minilm-l6-v2", help="embedded encoder, 'tiny-bert', hub id or folder"),
    r: int = typer.Option(8, "--r", "--rank", help="adapter rank"),
    order: str = typer.Option("out_first", help="BoRA normalisation order: out_first | in_first"),
    epochs: int = typer.Option(1),
    batch_size: int = typer.Option(32),
    lr: float = typer.Option(1e-3),
    max_length: int = typer.Option(64, help="tokens per text"),
    max_train: int = typer.Option(2000, help="training texts (stratified sample of the train split)"),
    max_test: int = typer.Option(1000, help="test texts (stratified sample of the test split)"),
    seed: int = typer.Option(0),
    out: Path = typer.Option(None, help="folder for the adapter and metrics.json"),
    as_json: bool = typer.Option(False, "--json", help="print the metrics as JSON"),
) -> None:
    """Fine-tune an encoder classifier with one adapter kind and report test accuracy and macro-F1."""
    from tunelab.adapters.attach import make_config
    from tunelab.adapters.classify import BERT_TARGETS, TrainSettings, train_classifier
    from tunelab.data import load_labeled_text
    from tunelab.io import atomic_write_json, staged_dir
    from tunelab.models import load_encoder

    make_config(adapter, r=r, target_modules=BERT_TARGETS, order=order)  # validates before any loading
    for name, value in (("epochs", epochs), ("batch size", batch_size), ("max length", max_length),
                        ("max train", max_train), ("max test", max_test)):
        if value <= 0:
            raise UserError(f"{name} must be positive, got {value}")
    validate.positive("--lr", lr)
    _check_out(out)
    dataset = load_labeled_text(data, text_column=text_column, label_column=label_column)
    _check_labels(data, dataset.labels)
    train_set, test_set = dataset.train_test_split(0.2)
    train_set, test_set = train_set.sample(max_train, seed=0), test_set.sample(max_test, seed=0)
    model_encoder, tokenizer = load_encoder(encoder)
    settings = TrainSettings(adapter=adapter, r=r, order=order, epochs=epochs, batch_size=batch_size, lr=lr,
                             max_length=max_length, seed=seed)
    model, metrics = train_classifier(model_encoder, tokenizer, train_set, test_set, settings,
                                      description=f"{adapter} r={r}")
    metrics.update(data=data, encoder=encoder, label_names=dataset.label_names)
    if out is not None:
        with staged_dir(out) as stage:
            model.save_pretrained(str(stage / "adapter"))
            atomic_write_json(stage / "metrics.json", metrics)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
    else:
        typer.echo(f"{adapter} r={r} on {data}: accuracy {metrics['accuracy']:.4f}, "
                   f"macro-F1 {metrics['macro_f1']:.4f} ({metrics['trainable_parameters']} trainable parameters)")


@app.command()
def bench(
    model: str = typer.Option("smollm2-135m-instruct", help="causal LM: embedded name, hub id or folder"),
    methods: str = typer.Option("lora,dora,bora,bora:in_first", help="comma-separated; bora:in_first for the order"),
    r: int = typer.Option(16, "--r", "--rank"),
    batch_size: int = typer.Option(2),
    seq_len: int = typer.Option(64),
    repeats: int = typer.Option(5, help="timed training steps per method (interleaved)"),
    threads: int = typer.Option(2, help="torch CPU threads"),
    profile_memory: bool = typer.Option(True, help="profile one step per method for its peak memory (slow)"),
    out: Path = typer.Option(None, help="folder for bench.json"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Training-step time and peak step memory of each adapter, and merged inference against the base model."""
    import torch

    from tunelab.adapters.attach import ADAPTERS, make_config
    from tunelab.adapters.bench import LLAMA_TARGETS, run_speed_study
    from tunelab.io import atomic_write_json, staged_dir

    names = [m.strip() for m in methods.split(",") if m.strip()]
    for name in names:
        kind, _, order = name.partition(":")
        if kind not in ADAPTERS:
            raise UserError(f"unknown method '{name}': use {', '.join(ADAPTERS)} (bora:in_first for the order)")
        make_config(kind, r=r, target_modules=LLAMA_TARGETS, order=order or "out_first")
    if repeats < 1 or batch_size < 1 or seq_len < 2:
        raise UserError("repeats, batch size must be >= 1 and seq len >= 2")
    validate.at_least("--threads", threads, 1)
    _check_out(out)
    torch.set_num_threads(threads)
    result = run_speed_study(model, names, r=r, batch_size=batch_size, seq_len=seq_len, repeats=repeats,
                             profile_memory=profile_memory)
    if out is not None:
        with staged_dir(out) as stage:
            atomic_write_json(stage / "bench.json", result)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        def times(value) -> str:
            return "-" if value is None else f"x{value:.3f}"

        for name, row in result["training"].items():
            typer.echo(f"{name:>14}: step {row['median_step_s']:.3f} s ({times(row['time_vs_dora'])} DoRA), "
                       f"peak {row['peak_step_mb']:.1f} MB ({times(row['memory_vs_dora'])} DoRA), "
                       f"saved activations {row['saved_activation_mb']:.1f} MB "
                       f"({times(row['activations_vs_dora'])} DoRA)")
        if result["inference"]:
            typer.echo(f"merged BoRA inference: {times(result['inference']['merged_vs_base'])} the base model")
