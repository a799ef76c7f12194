"""`tunelab active query`: a scripted human loop, and one-line errors that write nothing."""

from __future__ import annotations

import json
import re

import pytest

from tunelab.cli import main

WORDS = {"sport": "ball goal team match", "code": "python function bug compile", "food": "bread soup cheese salt"}
NAMES = list(WORDS)


def gold_label(i: int) -> str:
    return NAMES[i % 3]


def write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def files(tmp_path, monkeypatch):
    """A 60-text pool with ids (the gold labels stay hidden in `gold_label`) and a valid labelled file."""
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TUNELAB_QUIET", "1")
    pool = tmp_path / "pool.jsonl"
    write_jsonl(pool, [{"id": f"doc-{i}", "text": f"{WORDS[gold_label(i)]} example {i}"} for i in range(60)])
    labeled = tmp_path / "labeled.jsonl"
    write_jsonl(labeled, [{"id": f"doc-{i}", "label": gold_label(i)} for i in range(6)])
    return pool, labeled, tmp_path / "out" / "to_label.jsonl"


def query(pool, out, *extra) -> list[str]:
    return ["active", "query", "--dataset", str(pool), "--out", str(out), "--encoder", "tiny-bert",
            "--max-length", "16", "--json", *extra]


def label_by_script(out, labeled) -> None:
    """The 'person': adds the hidden gold label to every row asked for and appends them to the labelled file."""
    rows = [{**row, "label": gold_label(int(row["id"].split("-")[1]))} for row in read_jsonl(out)]
    with open(labeled, "a") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)


def test_two_round_human_loop(files, capsys):
    pool, labeled, out = files
    labeled.unlink()  # nobody has labelled anything yet
    assert main(query(pool, out, "--strategy", "random", "--n", "9")) == 0
    first = read_jsonl(out)
    assert len(first) == 9 and all(r["guess"] is None and r["text"] for r in first)
    assert json.loads(capsys.readouterr().out)["model"] is False
    label_by_script(out, labeled)

    asked = {r["id"] for r in first}
    for round_index in (1, 2):
        assert main(query(pool, out, "--labeled", str(labeled), "--strategy", "vapal", "--n", "6")) == 0
        summary = json.loads(capsys.readouterr().out)
        rows = read_jsonl(out)
        assert len(rows) == 6 and len({r["id"] for r in rows}) == 6
        assert not asked & {r["id"] for r in rows}  # nothing labelled comes back
        assert all(r["guess"] in NAMES and 0 <= r["probability"] <= 1 for r in rows)
        assert summary["labeled"] == 9 + 6 * (round_index - 1) and summary["unlabeled"] == 60 - summary["labeled"]
        assert summary["labels"] == sorted(NAMES) and summary["model"] is True
        asked |= {r["id"] for r in rows}
        if round_index == 2:  # a repeated call (or a resumed one) writes the same file
            before = out.read_bytes()
            assert main(query(pool, out, "--labeled", str(labeled), "--strategy", "vapal", "--n", "6")) == 0
            assert out.read_bytes() == before
        label_by_script(out, labeled)
    assert len(read_jsonl(labeled)) == 21
    assert sorted(p.name for p in out.parent.iterdir()) == ["to_label.jsonl"]  # no temp files left


def test_rows_without_ids_are_numbered_and_labels_keep_their_type(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    pool = tmp_path / "pool.jsonl"
    write_jsonl(pool, [{"text": f"{WORDS[gold_label(i)]} example {i}"} for i in range(30)])
    labeled = tmp_path / "labeled.csv"  # CSV ids are text: they still match the row numbers
    labeled.write_text("id,label\n" + "".join(f"{i},{i % 2}\n" for i in range(1, 7)))
    out = tmp_path / "next.jsonl"
    assert main(query(pool, out, "--labeled", str(labeled), "--strategy", "badge", "--n", "4")) == 0
    rows = read_jsonl(out)
    assert all(isinstance(r["id"], int) and 7 <= r["id"] <= 30 for r in rows)
    assert all(r["guess"] in ("0", "1") for r in rows)  # CSV labels are text
    as_json = tmp_path / "labeled.jsonl"
    write_jsonl(as_json, [{"id": i, "label": i % 2} for i in range(1, 7)])
    assert main(query(pool, out, "--labeled", str(as_json), "--strategy", "badge", "--n", "4")) == 0
    assert all(type(r["guess"]) is int for r in read_jsonl(out))  # a guess reads like the labels given


def bad_row(rows):  # the labelled file gets a row whose id is not in the pool
    return rows + [{"id": "doc-999", "label": "sport"}]


LABELED_CASES = {
    "unknown id": (bad_row, [], "id 'doc-999' is not in the dataset"),
    "label outside the set": (lambda rows: rows + [{"id": "doc-7", "label": "music"}],
                              ["--labels", "sport,code,food"], "label 'music' is not one of sport, code, food"),
    "duplicated id": (lambda rows: rows + [{"id": "doc-1", "label": "code"}], [], "labelled twice"),
    "missing label": (lambda rows: rows + [{"id": "doc-8"}], [], "has no 'label'"),
    "empty labelled set": (lambda rows: [], [], "no labelled rows yet"),
    "single class": (lambda rows: [r for r in rows if r["label"] == "sport"], [], "single class 'sport'"),
    "too many asked": (lambda rows: rows, ["--n", "55"], "cannot query 55 examples: only 54"),
    "one-label set": (lambda rows: rows, ["--labels", "sport"], "at least two labels"),
    "unknown strategy": (lambda rows: rows, ["--strategy", "bald"], "unknown strategy 'bald'"),
}


def assert_one_line_and_nothing_written(capsys, argv, out, message) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not out.parent.exists() or not any(out.parent.iterdir())


@pytest.mark.parametrize("case", list(LABELED_CASES))
def test_labelled_file_errors(files, capsys, case):
    pool, labeled, out = files
    edit, extra, message = LABELED_CASES[case]
    write_jsonl(labeled, edit(read_jsonl(labeled)))
    assert_one_line_and_nothing_written(capsys, query(pool, out, "--labeled", str(labeled), *extra), out, message)


@pytest.mark.parametrize("case, content, message", [
    ("bad JSON line", '{"id": "a", "text": "fine"}\n{"id": "b", "text": \n', r"pool.jsonl:2: malformed JSON"),
    ("missing text", '{"id": "a", "text": "fine"}\n{"id": "b", "body": "where"}\n', "row 2 has no 'text' text"),
    ("duplicated id", '{"id": "a", "text": "one"}\n{"id": "a", "text": "two"}\n', "id 'a' appears in rows 1 and 2"),
    ("some rows without id", '{"id": "a", "text": "one"}\n{"text": "two"}\n', "row 2 has no 'id'"),
])
def test_dataset_errors(files, capsys, case, content, message):
    pool, labeled, out = files
    pool.write_text(content)
    labeled.write_text("")
    assert_one_line_and_nothing_written(capsys, query(pool, out, "--strategy", "random", "--n", "1"), out, message)


def test_bad_labelled_json_and_paths(files, capsys):
    pool, labeled, out = files
    labeled.write_text('{"id": "doc-1", "label": "sport"}\nnot json\n')
    assert_one_line_and_nothing_written(capsys, query(pool, out, "--labeled", str(labeled)), out,
                                        r"labeled.jsonl:2: malformed JSON")
    write_jsonl(labeled, [{"id": "doc-1", "label": "sport"}])
    assert_one_line_and_nothing_written(capsys, query(pool, labeled, "--labeled", str(labeled)), out,
                                        "is the --labeled file and would overwrite it")
    assert_one_line_and_nothing_written(capsys, query(pool, out.with_suffix(".csv"), "--labeled", str(labeled)),
                                        out, r"\.jsonl file")
    assert_one_line_and_nothing_written(capsys, query(pool, out, "--labeled", str(labeled) + ".missing"), out,
                                        "file not found")


def test_an_error_leaves_the_previous_output_as_it_was(files, capsys):
    pool, labeled, out = files
    out.parent.mkdir()
    out.write_text("previous round\n")
    write_jsonl(labeled, bad_row(read_jsonl(labeled)))
    assert main(query(pool, out, "--labeled", str(labeled))) == 2
    assert out.read_text() == "previous round\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["to_label.jsonl"]
