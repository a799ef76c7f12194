"""Every bad input, for every command: one line `error: ...` on stderr, exit code 2, no traceback, nothing written.

`CASES` is the table (command, arguments, files the case creates, why it is wrong, what the error line must say);
`benchmarks/foundation/bad_input_table.py` writes docs/bad-input.md from it. Most cases run `tunelab.cli.main` in
this process (the options are checked before any model or data loads, so each takes milliseconds); the cases that
once gave tracebacks also run the real command in a subprocess, where warnings and progress bars reach stderr as a
user sees them.

Placeholders in arguments and file names: `{tmp}` is the case's work folder, `{out}` the output path `{tmp}/out`.
Nothing under `{tmp}` may change: a failed command leaves no output, no checkpoint folder, no temp file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import traceback
import warnings
from pathlib import Path
from typing import Callable, Union

import pytest

DIR = object()  # a `files` value: create an empty folder
Content = Union[str, bytes, object, Callable[[Path], None]]

PREFS = "".join(json.dumps({"prompt": f"Say something {i}.", "chosen": f"Something nice {i}.",
                            "rejected": f"Something rude {i}."}) + "\n" for i in range(4))
SFT = "".join(json.dumps({"prompt": f"What is {i} + {i}?", "response": str(2 * i)}) + "\n" for i in range(4))
LABELED = "text,label\n" + "".join(f"text number {i} about {'cats' if i % 2 else 'dogs'},{'a' if i % 2 else 'b'}\n"
                                   for i in range(20))
LONG = "x" * 5000


def _sqlite(tables: bool = True) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            if tables:
                conn.execute("CREATE TABLE city (id INTEGER PRIMARY KEY, name TEXT)")
                conn.execute("INSERT INTO city VALUES (1, 'Lyon')")
            else:
                conn.execute("PRAGMA user_version = 1")  # a valid database file without tables
            conn.commit()

    return build


def _parent_is_file(path: Path) -> None:
    path.write_text("a file where a folder is needed\n")


@dataclasses.dataclass(frozen=True)
class Case:
    command: str  # the sub-command, e.g. "align train"
    args: tuple[str, ...]
    why: str  # what is wrong with the input
    says: str  # the error line must contain this (case-insensitive)
    files: tuple[tuple[str, Content], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    subprocess: bool = False  # also run the real command in a subprocess
    slow: bool = False

    @property
    def id(self) -> str:
        return f"{self.command.replace(' ', '-')}:{self.why}".replace(" ", "-")[:80]

    def argv(self, tmp: Path) -> list[str]:
        return self.command.split() + [_fill(a, tmp) for a in self.args]


def _fill(text: str, tmp: Path) -> str:
    return text.replace("{out}", str(tmp / "out")).replace("{tmp}", str(tmp))


def C(command: str, args: str | tuple, why: str, says: str, **kwargs) -> Case:
    """A case; `args` as one string is split on spaces (use a tuple for values with spaces)."""
    args = tuple(args.split()) if isinstance(args, str) else tuple(args)
    kwargs = {k: tuple(v.items()) if isinstance(v, dict) else v for k, v in kwargs.items()}
    return Case(command, args, why, says, **kwargs)


TRAIN = "--data {tmp}/p.jsonl --out {out} --model tiny-llama"
P = {"p.jsonl": PREFS}
POFT = "--data {tmp}/s.jsonl --out {out} --target tiny-llama --loss sft"
S = {"s.jsonl": SFT}
ADAPT = "--data {tmp}/d.csv --encoder tiny-bert --out {out}"
D = {"d.csv": LABELED}
ACTIVE = "--dataset {tmp}/d.csv --encoder tiny-bert --out {out}"
QUERY = "--dataset {tmp}/d.csv --encoder tiny-bert --out {tmp}/q.jsonl"
DB = {"db.sqlite": _sqlite()}
SIM = "--out {out} --n-images 60"

CASES: list[Case] = [
    # ------------------------------------------------------------------ align train
    C("align train", f"{TRAIN} --beta nan", "beta NaN", "--beta must be a finite number", files=P),
    C("align train", f"{TRAIN} --lr inf", "lr inf", "--lr must be a finite number", files=P),
    C("align train", f"{TRAIN} --beta 0", "beta 0", "beta must be > 0", files=P),
    C("align train", f"{TRAIN} --beta -1", "beta negative", "beta must be > 0", files=P),
    C("align train", f"{TRAIN} --epochs 0", "zero epochs", "--epochs must be > 0", files=P),
    C("align train", f"{TRAIN} --epochs nan", "epochs NaN", "--epochs must be a finite number", files=P),
    C("align train", f"{TRAIN} --steps 0", "zero steps", "--steps must be >= 1", files=P),
    C("align train", f"{TRAIN} --w -inf", "w -inf", "--w must be a finite number", files=P),
    C("align train", f"{TRAIN} --weak-weight nan", "weak weight NaN", "--weak-weight must be a finite", files=P),
    C("align train", f"{TRAIN} --nll-weight nan", "guard NaN", "--nll-weight must be a finite", files=P),
    C("align train", f"{TRAIN} --batch-size 0", "zero batch", "--batch-size", files=P),
    C("align train", f"{TRAIN} --lora-r -1", "negative rank", "--lora-r", files=P),
    C("align train", f"{TRAIN} --lr 0", "zero learning rate", "--lr", files=P),
    C("align train", f"{TRAIN} --max-length 1", "max length 1", "max_length must be >= 2", files=P),
    C("align train", f"{TRAIN} --method sft", "unknown method", "unknown method 'sft'", files=P),
    C("align train", f"{TRAIN} --weak-source nosuch", "unknown weak source", "unknown weak source", files=P),
    C("align train", f"{TRAIN} --ns 0", "zero strong negatives", "num_strong", files=P),
    C("align train", f"{TRAIN} --nw -1", "negative weak negatives", "num_weak", files=P),
    C("align train", f"{TRAIN} --save-steps -1", "negative save steps", "--save-steps", files=P),
    C("align train", f"{TRAIN} --epochs abc", "epochs not a number", "--epochs", files=P),
    C("align train", ("--data", "{tmp}/p.jsonl", "--out", "{out}", "--method", LONG), "5000-character value",
      "characters cut", files=P),
    C("align train", "--data {tmp}/none.jsonl --out {out} --model tiny-llama", "missing data file", "none.jsonl"),
    C("align train", "--data {tmp} --out {out} --model tiny-llama", "data is a folder", "is a folder"),
    C("align train", "--data {tmp}/p.txt --out {out} --model tiny-llama", "unsupported suffix",
      "unsupported file type", files={"p.txt": PREFS}),
    C("align train", TRAIN, "invalid UTF-8", "line 2, column 13: invalid UTF-8",
      files={"p.jsonl": PREFS.split("\n")[0].encode() + b'\n{"prompt": "\xff\xfe", "chosen": "a", "rejected": "b"}\n'},
      subprocess=True),
    C("align train", TRAIN, "lone surrogate", "lone UTF-16 surrogate",
      files={"p.jsonl": PREFS + '{"prompt": "a\\ud800b", "chosen": "c", "rejected": "d"}\n'}, subprocess=True),
    C("align train", TRAIN, "NUL in a string", "NUL byte",
      files={"p.jsonl": PREFS + '{"prompt": "a\\u0000b", "chosen": "c", "rejected": "d"}\n'}),
    C("align train", TRAIN, "malformed JSON line", "malformed JSON line", files={"p.jsonl": PREFS + "{oops\n"}),
    C("align train", TRAIN, "empty data file", "empty", files={"p.jsonl": ""}),
    C("align train", TRAIN, "no rejected column", "missing column",
      files={"p.jsonl": '{"prompt": "a", "chosen": "b"}\n'}),
    C("align train", "--data {tmp}/p.jsonl --out {tmp}/f/out --model tiny-llama", "out parent is a file",
      "is a file, not a folder", files={**P, "f": _parent_is_file}, subprocess=True),
    C("align train", "--data {tmp}/p.jsonl --out /proc/tunelab-out --model tiny-llama", "out not writable",
      "not writable", files=P, subprocess=True),
    C("align train", TRAIN, "out is a file", "is an existing file", files={**P, "out": "x\n"}, subprocess=True),
    C("align train", f"{TRAIN} --checkpoint-dir {{tmp}}/ck", "checkpoint dir is a file", "--checkpoint-dir",
      files={**P, "ck": "x\n"}),
    C("align train", f"{TRAIN} --resume {{tmp}}/nosuch", "no such checkpoint", "no such checkpoint", files=P),
    C("align train", f"{TRAIN} --resume last", "nothing to resume", "no checkpoint", files=P),
    # a truncated tokenizer in tunelab's cache is rebuilt, not refused: tests/foundation/test_crash_safety.py
    # ------------------------------------------------------------------ align theory / study / enumerable
    C("align theory", "--beta -1", "beta negative", "--beta must be > 0"),
    C("align theory", "--beta nan", "beta NaN", "--beta must be a finite number"),
    C("align theory", "--w inf", "w inf", "--w must be a finite number"),
    C("align theory", "--w -1", "w negative", "--w must be >= 0"),
    C("align theory", "--prompts 0", "zero prompts", "--prompts >= 1"),
    C("align theory", "--responses 1", "one response", "--responses >= 2"),
    C("align theory", "--inits 0", "zero inits", "--inits >= 1"),
    C("align theory", "--nw a,b", "nw not integers", "comma-separated integers"),
    C("align theory", ("--nw", ""), "nw empty", "non-negative integers"),
    C("align theory", "--out {tmp}/f/out", "out parent is a file", "is a file, not a folder",
      files={"f": _parent_is_file}, subprocess=True),
    C("align theory", "--out /proc/tunelab-out", "out not writable", "not writable", subprocess=True),
    C("align theory", "--out {out}", "out is a file", "is an existing file", files={"out": "x\n"}),
    C("align study", "--prompts 1", "one prompt", "--prompts must be between"),
    C("align study", "--lr nan", "lr NaN", "--lr must be a finite number"),
    C("align study", "--steps 0", "zero steps", "--steps >= 1"),
    C("align study", "--seeds x", "seeds not integers", "--seeds"),
    C("align study", "--batch-size 0", "zero batch", "--batch-size"),
    C("align study", "--max-new-tokens 0", "no new tokens", "--max-new-tokens"),
    C("align study", "--out {out}", "out is a file", "is an existing file", files={"out": "x\n"}),
    C("align enumerable", "--beta nan", "beta NaN", "--beta must be a finite number"),
    C("align enumerable", "--beta 0", "beta 0", "beta"),
    C("align enumerable", "--sizes 1,x", "sizes not integers", "--sizes"),
    C("align enumerable", "--steps 0", "zero steps", "steps >= 1"),
    C("align enumerable", "--out {out}", "out is a file", "is an existing file", files={"out": "x\n"}),
    # ------------------------------------------------------------------ align poft
    C("align poft score", "--data {tmp}/none.jsonl -a tiny-llama --out {tmp}/s.json", "missing data", "none.jsonl"),
    C("align poft score", "--data {tmp}/s.jsonl --out {tmp}/o.json", "no aligned model", "--aligned-model", files=S),
    C("align poft score", "--data {tmp}/s.jsonl -a tiny-llama --out {tmp}", "out is a folder", "is a folder",
      files=S),
    C("align poft score", "--data {tmp}/s.jsonl -a tiny-llama --out {tmp}/o.json --batch-size 0", "zero batch",
      "--batch-size", files=S),
    C("align poft train", POFT, "out is a file", "is an existing file", files={**S, "out": "x\n"}, subprocess=True),
    C("align poft train", f"{POFT} --beta nan", "beta NaN", "--beta must be a finite number", files=S),
    C("align poft train", f"{POFT} --lr inf", "lr inf", "--lr must be a finite number", files=S),
    C("align poft train", f"{POFT} --gamma nan", "gamma NaN", "--gamma must be a finite number", files=S),
    C("align poft train", f"{POFT} --epochs 0", "zero epochs", "--epochs must be > 0", files=S),
    C("align poft train", f"{POFT} --lr 0", "zero learning rate", "--lr must be > 0", files=S),
    C("align poft train", f"{POFT} --loss nosuch", "unknown loss", "--loss", files=S),
    C("align poft train", "--data {tmp}/s.jsonl --out {out} --target tiny-llama", "no reference scores",
      "reference scores", files=S),
    C("align poft train", "--data {tmp}/s.jsonl --out {out} --target tiny-llama --scores {tmp}/none.json",
      "missing scores file", "none.json", files=S),
    C("align poft study", "--task nosuch --out {out}", "unknown task", "unknown task"),
    C("align poft study", "--noise 1.5 --out {out}", "noise above 1", "--noise"),
    C("align poft study", "--noise nan --out {out}", "noise NaN", "--noise must be a finite number"),
    C("align poft study", "--lr nan --out {out}", "lr NaN", "--lr must be a finite number"),
    C("align poft study", "--epochs 0 --out {out}", "zero epochs", "--epochs must be > 0"),
    C("align poft study", "--out {out}", "out is a file", "is an existing file", files={"out": "x\n"}),
    # ------------------------------------------------------------------ adapters
    C("adapters train", f"{ADAPT} --adapter nosuch", "unknown adapter", "nosuch", files=D),
    C("adapters train", f"{ADAPT} --r 0", "zero rank", "rank", files=D),
    C("adapters train", f"{ADAPT} --lr nan", "lr NaN", "--lr must be a finite number", files=D),
    C("adapters train", f"{ADAPT} --lr 0", "zero learning rate", "--lr must be > 0", files=D),
    C("adapters train", f"{ADAPT} --epochs 0", "zero epochs", "epochs must be positive", files=D),
    C("adapters train", f"{ADAPT} --order sideways", "unknown order", "sideways", files=D),
    C("adapters train", ADAPT, "NUL byte in CSV", "NUL byte",
      files={"d.csv": LABELED + "bad\x00text,a\n"}, subprocess=True),
    C("adapters train", ADAPT, "invalid UTF-8 in CSV", "invalid UTF-8", files={"d.csv": LABELED.encode() +
                                                                                b"caf\xe9,a\n"}),
    C("adapters train", ADAPT, "single label", "at least two labels",
      files={"d.csv": "text,label\n" + "".join(f"text {i},a\n" for i in range(20))}, subprocess=True),
    C("adapters train", "--data {tmp}/d.jsonl --encoder tiny-bert --out {out}", "NaN labels", "NaN label",
      files={"d.jsonl": "".join(json.dumps({"text": f"text {i}", "label": [0, 1, float("nan")][i % 3]}) + "\n"
                                for i in range(12))}),
    C("adapters train", f"{ADAPT} --text-column body", "no such column", "no column 'body'", files=D),
    C("adapters train", "--data {tmp}/none.csv --encoder tiny-bert --out {out}", "missing data", "none.csv"),
    C("adapters train", ADAPT, "out is a file", "is an existing file", files={**D, "out": "x\n"}),
    C("adapters train", "--data {tmp}/d.csv --encoder tiny-bert --out /proc/tunelab-out", "out not writable",
      "not writable", files=D),
    C("adapters bench", "--methods lora,nosuch --out {out}", "unknown method", "unknown method 'nosuch'"),
    C("adapters bench", "--repeats 0 --out {out}", "zero repeats", "repeats"),
    C("adapters bench", "--threads 0 --out {out}", "zero threads", "--threads"),
    C("adapters bench", "--seq-len 1 --out {out}", "sequence of 1", "seq len"),
    C("adapters bench", "--out {out}", "out is a file", "is an existing file", files={"out": "x\n"}),
    # ------------------------------------------------------------------ active
    C("active run", f"{ACTIVE} --query-size 0", "zero query size", "--query-size must be >= 1", files=D,
      subprocess=True),
    C("active run", f"{ACTIVE} --rounds -1", "negative rounds", "--rounds", files=D),
    C("active run", f"{ACTIVE} --initial-size 0", "zero initial labels", "--initial-size", files=D),
    C("active run", f"{ACTIVE} --strategy nosuch", "unknown strategy", "nosuch", files=D),
    C("active run", f"{ACTIVE} --xi nan", "xi NaN", "--xi must be a finite number", files=D),
    C("active run", f"{ACTIVE} --eps inf", "eps inf", "--eps must be a finite number", files=D),
    C("active run", f"{ACTIVE} --eps -1", "eps negative", "--eps must be > 0", files=D),
    C("active run", f"{ACTIVE} --strategy random --xi 0.1", "VAPAL option for random", "VAPAL strategies only",
      files=D),
    C("active run", f"{ACTIVE} --max-pool -1", "negative pool", "--max-pool", files=D),
    C("active run", ACTIVE, "out is a file", "is an existing file", files={**D, "out": "x\n"}, subprocess=True),
    C("active run", "--dataset {tmp}/none.csv --encoder tiny-bert", "missing data", "none.csv"),
    C("active query", f"{QUERY} --n 0", "zero rows", "--n must be >= 1", files=D),
    C("active query", "--dataset {tmp}/d.csv --encoder tiny-bert --out {tmp}", "out is a folder", "is a folder",
      files=D),
    C("active query", f"{QUERY} --strategy nosuch", "unknown strategy", "nosuch", files=D),
    C("active query", "--dataset {tmp}/none.csv --out {tmp}/q.jsonl", "missing pool", "none.csv"),
    C("active bench", "--seeds 0 --out {out}", "zero seeds", "--seeds"),
    C("active bench", "--corpus nosuch --out {out}", "unknown corpus", "unknown benchmark corpus"),
    C("active bench", "--strategy nosuch --out {out}", "unknown strategy", "unknown benchmark strategy"),
    C("active bench", "--out {out}", "out is a file", "is an existing file", files={"out": "x\n"}),
    # ------------------------------------------------------------------ sql
    C("sql ask", ("", "--db", "{tmp}/db.sqlite"), "empty question", "question is empty", files=DB),
    C("sql ask", "why? --db {tmp}/db.sqlite --protocol nosuch", "unknown protocol", "unknown protocol", files=DB),
    C("sql ask", "why? --db {tmp}/db.sqlite --style nosuch", "unknown style", "unknown style", files=DB),
    C("sql ask", ("why?", "--db", "{tmp}/db.sqlite", "--style", LONG), "5000-character style", "characters cut",
      files=DB),
    C("sql ask", "why? --db {tmp}/none.sqlite", "missing database", "none.sqlite"),
    C("sql ask", "why? --db {tmp}/db.sqlite --encoder none", "database without tables", "no tables",
      files={"db.sqlite": _sqlite(tables=False)}, subprocess=True),
    C("sql ask", "why? --db {tmp}/db.sqlite --budget-s nan", "budget NaN", "--budget-s must be a finite", files=DB),
    C("sql ask", "why? --db {tmp}/db.sqlite --budget-s -1", "negative budget", "--budget-s must be > 0", files=DB),
    C("sql ask", "why? --db {tmp}/db.sqlite --max-turns 0", "zero turns", "--max-turns", files=DB),
    C("sql ask", "why? --db {tmp}/db.sqlite --protocol tools", "tools without endpoint", "--base-url", files=DB),
    C("sql ask", "why? --db {tmp}/db.sqlite --trajectory {tmp}", "trajectory is a folder", "is a folder", files=DB),
    C("sql ask", "why? --db {tmp}/db.sqlite --threads 0", "zero threads", "--threads", files=DB),
    C("sql ask", "why? --db {tmp}/db.sqlite --encoder none --base-url http://127.0.0.1:9/v1 --model m",
      "endpoint down", "127.0.0.1:9", files=DB, subprocess=True),
    C("sql index", "--db {tmp}/db.sqlite --out {tmp}", "out is a folder", "is a folder", files=DB, subprocess=True),
    C("sql index", "--db {tmp}/db.sqlite --out /proc/tunelab-out/v.idx", "out not writable", "not writable",
      files=DB, subprocess=True),
    C("sql index", "--db {tmp}/none.sqlite", "missing database", "none.sqlite"),
    C("sql schema", "--db {tmp}/none.sqlite", "missing database", "none.sqlite"),
    C("sql schema", "--db {tmp}/t.sqlite", "not a database", "t.sqlite", files={"t.sqlite": "plain text\n"}),
    C("sql eval", "--out {out}", "neither bird nor questions", "exactly one of"),
    C("sql eval", "--questions {tmp}/q.json --method nosuch", "unknown method", "unknown method",
      files={"q.json": "[]"}),
    C("sql eval", "--questions {tmp}/none.json", "missing questions", "none.json"),
    C("sql eval", "--questions {tmp}/q.json --limit 0", "zero limit", "--limit", files={"q.json": "[]"}),
    C("sql eval", "--questions {tmp}/q.json --out {out}", "out is a file", "is an existing file",
      files={"q.json": "[]", "out": "x\n"}),
    C("sql score", "--predictions {tmp}/none.json --bird {tmp}/bird", "missing predictions", "none.json",
      files={"bird": DIR}),
    C("sql score", "--predictions {tmp}/p.json --bird {tmp}/nosuch", "missing BIRD folder", "nosuch",
      files={"p.json": "{}"}),
    C("sql mcp", "--db {tmp}/db.sqlite --transport carrier-pigeon", "unknown transport", "--transport", files=DB),
    C("sql mcp", "--db {tmp}/db.sqlite --port 70000", "port out of range", "--port", files=DB),
    C("sql mcp", "--db {tmp}/db.sqlite --timeout-s nan", "timeout NaN", "--timeout-s must be a finite", files=DB),
    C("sql mcp", "--db {tmp}/db.sqlite --max-rows 0", "zero rows", "--max-rows", files=DB),
    C("sql mcp", "--db {tmp}/none.sqlite", "missing database", "none.sqlite"),
    # ------------------------------------------------------------------ cortex
    C("cortex simulate", f"{SIM} --height 0", "zero height", "--height", subprocess=True),
    C("cortex simulate", f"{SIM} --width -4", "negative width", "--width", subprocess=True),
    C("cortex simulate", "--out {out} --n-images 10", "too few images", "--n-images must be >= 50"),
    C("cortex simulate", f"{SIM} --repeats 1", "one repeat", "--repeats must be >= 2"),
    C("cortex simulate", "--out /proc/tunelab-out --n-images 60", "out not writable", "not writable",
      subprocess=True),
    C("cortex simulate", SIM, "out is a file", "is an existing file", files={"out": "x\n"}),
    C("cortex simulate", "--n-images 60", "no --out", "--out"),
    C("cortex fit", "--data {tmp}/none.npz --out {out}", "missing recording", "none.npz"),
    C("cortex fit", "--data {tmp}/r.npz --out {out} --readout nosuch", "unknown readout", "readout",
      files={"r.npz": b"not a recording"}),
    C("cortex fit", "--data {tmp}/r.npz --out {out} --loss nosuch", "unknown loss", "loss",
      files={"r.npz": b"not a recording"}),
    C("cortex fit", "--data {tmp}/r.npz --out {out} --epochs 0", "zero epochs", "--epochs",
      files={"r.npz": b"not a recording"}),
    C("cortex fit", "--data {tmp}/r.npz --out {out}", "out is a file", "is an existing file",
      files={"r.npz": b"not a recording", "out": "x\n"}),
    C("cortex map", "--model {tmp}/nosuch --out {out}", "missing model folder", "nosuch"),
    C("cortex map", "--model {tmp}/m --out {out} --top-k 0", "zero top-k", "--top-k", files={"m": DIR}),
    C("cortex map", "--model {tmp}/m --out {out} --bank-size 0", "empty bank", "--bank-size", files={"m": DIR}),
    C("cortex verify", "--map {tmp}/m", "neither simulation nor session", "exactly one of", files={"m": DIR}),
    C("cortex verify", "--map {tmp}/m --simulation {tmp}/s", "no map in folder", "no map in",
      files={"m": DIR, "s": DIR}),
    C("cortex verify", "--map {tmp}/m --simulation {tmp}/s --repeats 0", "zero repeats", "--repeats",
      files={"m": DIR, "s": DIR}),
    # ------------------------------------------------------------------ models, data, demo, usage
    C("models list", "--bogus", "unknown option", "no such option"),
    C("models install", "nosuch", "unknown model", "nosuch"),
    C("models verify", "nosuch", "unknown model", "nosuch"),
    C("data info", "{tmp}/d.csv", "invalid UTF-8", "line 3, column 4: invalid UTF-8",
      files={"d.csv": b"text,label\nok,a\ncaf\xe9,b\n"}, subprocess=True),
    C("data info", "{tmp}/d.jsonl", "NUL in a text", "NUL byte",
      files={"d.jsonl": '{"text": "a\\u0000", "label": "x"}\n'}),
    C("data info", "{tmp}/d.csv --text-column body", "no such column", "no column 'body'", files=D),
    C("data info", "{tmp}/d.json", "invalid JSON list", "invalid JSON", files={"d.json": "[{"}),
    C("demo", "--only nosuch --out {out}", "unknown demo", "no demo matches 'nosuch'", subprocess=True),
    C("demo", "--out {out}", "out is a file", "is an existing file", files={"out": "x\n"}, subprocess=True),
    C("demo", "--out /proc/tunelab-out", "out not writable", "not writable"),
    C("nosuch", "", "unknown command", "no such command"),
    C("cortex simulate", "--out {out} --bogus", "unknown option", "no such option"),
]


# ---------------------------------------------------------------------------------------------------- running


def make_files(case: Case, tmp: Path) -> None:
    for name, content in case.files:
        path = tmp / _fill(name, tmp)
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is DIR:
            path.mkdir()
        elif callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", errors="surrogatepass")


def snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` with a hash of its content (folders as 'dir'): what a failed run must not change."""
    tree = {}
    for path in sorted(root.rglob("*")):
        tree[str(path.relative_to(root))] = ("dir" if path.is_dir() else
                                             hashlib.sha256(path.read_bytes()).hexdigest())
    return tree


# warnings Python shows by default; pytest records them instead of printing, so they are counted as stderr lines
_SHOWN_WARNINGS = (FutureWarning, UserWarning, RuntimeWarning, SyntaxWarning, BytesWarning, UnicodeWarning)


def run_in_process(argv: list[str], env: dict[str, str]) -> tuple[object, str]:
    from tunelab.cli import main

    err, out = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                code = main(argv)
            except BaseException:  # a traceback is exactly what the case must not produce
                code = "raised"
                traceback.print_exc(file=err)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    shown = [f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, _SHOWN_WARNINGS)]
    return code, "".join(line + "\n" for line in shown) + err.getvalue()


def run_subprocess(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[object, str]:
    full_env = {**os.environ, **env, "PYTHONWARNINGS": "default"}
    full_env.pop("COLUMNS", None)
    proc = subprocess.run([sys.executable, "-m", "tunelab.cli", *argv], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=300, errors="replace")
    return proc.returncode, proc.stderr


def check(case: Case, code: object, stderr: str) -> str:
    """The error line, after asserting the promise: exit 2, one `error:` line on stderr, no traceback."""
    lines = stderr.splitlines()
    assert "Traceback" not in stderr, stderr[-3000:]
    assert code == 2, f"exit code {code}; stderr: {stderr[-2000:]}"
    assert len(lines) == 1 and lines[0].startswith("error: ") and lines[0][7:].strip(), f"stderr: {stderr[-2000:]}"
    assert len(lines[0]) < 500, f"error line of {len(lines[0])} characters"
    assert case.says.lower() in lines[0].lower(), f"expected '{case.says}' in: {lines[0]}"
    return lines[0]


def run_case(case: Case, tmp: Path, in_subprocess: bool = False) -> str:
    """Create the case's files in `tmp`, run it, check the promise and that nothing under `tmp` changed."""
    if any(a.startswith("/proc/") for a in case.args) and not Path("/proc/self").is_dir():
        pytest.skip("needs /proc, a folder no one can create files in")
    tmp.mkdir(parents=True, exist_ok=True)
    make_files(case, tmp)
    before = snapshot(tmp)
    env = {k: _fill(v, tmp) for k, v in case.env}
    argv = case.argv(tmp)
    code, stderr = run_subprocess(argv, env, tmp) if in_subprocess else run_in_process(argv, env)
    line = check(case, code, stderr)
    assert snapshot(tmp) == before, f"files changed under {tmp}: {sorted(set(snapshot(tmp)) ^ set(before))}"
    return line


def _params(cases):
    return [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow else []) for c in cases]


# ---------------------------------------------------------------------------------------------------- tests


def _leaf_commands(group, prefix: str = "") -> set[str]:
    leaves = set()
    for name, command in getattr(group, "commands", {}).items():
        path = f"{prefix} {name}".strip()
        leaves |= _leaf_commands(command, path) if getattr(command, "commands", None) else {path}
    return leaves


def test_the_table_covers_every_command():
    import typer

    from tunelab.cli import app

    leaves = _leaf_commands(typer.main.get_command(app))
    covered = {c.command for c in CASES}
    assert len(CASES) >= 100
    assert leaves <= covered, f"commands without a bad-input case: {sorted(leaves - covered)}"
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


@pytest.mark.parametrize("case", _params(CASES))
def test_bad_input_in_process(case, tmp_path):
    run_case(case, tmp_path / "work")


@pytest.mark.parametrize("case", _params([c for c in CASES if c.subprocess]))
def test_bad_input_real_command(case, tmp_path):
    run_case(case, tmp_path / "work", in_subprocess=True)


def test_exit_code_of_a_command_is_kept(tmp_path):
    """A command's `typer.Exit(n)` must reach the shell: `sql ask` and `demo` report failure with it."""
    import typer

    from tunelab import cli

    probe = typer.Typer()

    @probe.command()
    def fail() -> None:
        raise typer.Exit(3)

    cli.app.add_typer(probe, name="probe-exit")
    try:
        assert cli.main(["probe-exit", "fail"]) == 3
    finally:
        cli.app.registered_groups = [g for g in cli.app.registered_groups if g.name != "probe-exit"]


def test_sql_ask_without_an_answer_exits_1(tmp_path, monkeypatch, capsys):
    """Not a user mistake but not a success either: the shell sees 1 (it saw 0 while main() dropped the code)."""
    from tunelab.cli import main
    from tunelab.text2sql import cli as sql_cli
    from tunelab.text2sql.llm import ScriptedLLM

    _sqlite()(tmp_path / "db.sqlite")
    monkeypatch.setattr(sql_cli, "make_llm", lambda model, base_url, threads: ScriptedLLM(["Thought: no idea\n"
                                                                                          "Action: Done()"] * 8))
    code = main(["sql", "ask", "--db", str(tmp_path / "db.sqlite"), "--encoder", "none", "--style", "paper", "why?"])
    assert code == 1 and "no SQL answer" in capsys.readouterr().out


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write into read-only folders")
def test_read_only_parent_is_refused_before_work(tmp_path):
    locked = tmp_path / "work" / "locked"
    locked.mkdir(parents=True)
    locked.chmod(0o500)
    try:
        case = C("cortex simulate", "--out {tmp}/locked/out --n-images 60", "read-only parent", "not writable")
        run_case(case, tmp_path / "work")
    finally:
        locked.chmod(0o700)
