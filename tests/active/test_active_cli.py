"""`tunelab active run`: a tiny end-to-end run and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest

from tunelab.cli import main

WORDS = {"sport": "ball goal team match", "code": "python function bug compile", "food": "bread soup cheese salt"}


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TUNELAB_QUIET", "1")
    rows = [{"text": f"{WORDS[label]} example {i}", "label": label} for i in range(40) for label in WORDS]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def run_args(corpus, *extra):
    return ["active", "run", "--dataset", str(corpus), "--encoder", "tiny-bert", "--max-pool", "0",
            "--max-length", "16", *extra]


def test_run_end_to_end_and_resume(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    args = run_args(corpus, "--strategy", "vapal-alps", "--rounds", "2", "--query-size", "6", "--initial-size",
                    "9", "--out", str(out), "--json")
    assert main(args) == 0
    record = json.loads(capsys.readouterr().out)
    assert [r["n_labeled"] for r in record["rounds"]] == [9, 15, 21]
    assert 0 <= record["aulc_accuracy"] <= 1
    assert main(args) == 0  # resumes from run.json: nothing left to do, same record
    again = json.loads(capsys.readouterr().out)
    assert [r["selected"] for r in again["rounds"]] == [r["selected"] for r in record["rounds"]]


@pytest.mark.parametrize("extra, message", [
    (["--query-size", "500"], "cannot query|pool holds"),
    (["--label-column", "nope"], "no column 'nope'"),
    (["--strategy", "bald"], "unknown strategy 'bald'"),
    (["--strategy", "entropy", "--eps", "1"], "applies to VAPAL strategies only"),
])
def test_bad_input_is_one_line(corpus, capsys, extra, message):
    import re

    assert main(run_args(corpus, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err


def test_single_class_and_empty_texts(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    single = tmp_path / "single.jsonl"
    single.write_text("\n".join(json.dumps({"text": f"text {i}", "label": "a"}) for i in range(30)))
    assert main(["active", "run", "--dataset", str(single), "--encoder", "tiny-bert"]) == 2
    assert "two classes" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"text": "  ", "label": "a"}) + "\n" + json.dumps({"text": "x", "label": "b"}))
    assert main(["active", "run", "--dataset", str(empty), "--encoder", "tiny-bert"]) == 2
    assert "empty" in capsys.readouterr().err
