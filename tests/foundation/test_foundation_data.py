import json

import numpy as np
import pytest

from tunelab.data import (LabeledTextDataset, debian_sections, from_records, load_labeled_text, load_records,
                          read_records, stdlib_docs)
from tunelab.errors import UserError


def test_jsonl_csv_parquet_roundtrip(tmp_path):
    rows = [{"text": "alpha", "label": "a"}, {"text": "beta", "label": "b"}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    (tmp_path / "d.csv").write_text("text,label\nalpha,a\nbeta,b\n")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    for name in ("d.jsonl", "d.csv", "d.parquet"):
        assert read_records(tmp_path / name) == rows


def test_malformed_jsonl_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok", "label": 1}\n{"text": "broken", \n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: malformed JSON"):
        read_records(path)


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        load_records(tmp_path / "nope.jsonl")
    (tmp_path / "x.xml").write_text("<a/>")
    with pytest.raises(UserError, match="unsupported file type"):
        read_records(tmp_path / "x.xml")


def test_cli_style_error_for_unknown_label_column(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "x", "y": 1}\n')
    with pytest.raises(UserError, match="no column 'label'"):
        load_labeled_text(path)


def test_empty_text_is_rejected():
    with pytest.raises(UserError, match="row 2 has an empty"):
        from_records([{"text": "a", "label": 0}, {"text": "  ", "label": 1}])


def test_hash_split_is_stable_disjoint_and_order_free():
    texts = [f"document number {i}" for i in range(2000)]
    ds = LabeledTextDataset(texts, np.arange(2000) % 3, ["a", "b", "c"])
    train, test = ds.train_test_split(0.25)
    assert set(train.texts).isdisjoint(test.texts) and len(train) + len(test) == 2000
    assert 0.2 < len(test) / 2000 < 0.3
    shuffled = ds.subset(np.random.default_rng(0).permutation(2000))
    assert set(shuffled.train_test_split(0.25)[1].texts) == set(test.texts)


def test_sample_keeps_every_label_share():
    labels = np.array([0] * 900 + [1] * 100)
    ds = LabeledTextDataset([str(i) for i in range(1000)], labels, ["big", "small"])
    sub = ds.sample(100, seed=3)
    assert len(sub) == 100 and len(set(sub.texts)) == 100
    assert 8 <= (sub.labels == 1).sum() <= 12


def test_integer_and_string_labels():
    ds = from_records([{"text": "a", "label": 2}, {"text": "b", "label": 0}])
    assert ds.label_names == ["0", "1", "2"] and ds.labels.tolist() == [2, 0]
    ds = from_records([{"text": "a", "label": "pos"}, {"text": "b", "label": "neg"}])
    assert ds.label_names == ["neg", "pos"] and ds.labels.tolist() == [1, 0]


def test_debian_sections_is_a_real_deduplicated_corpus():
    ds = debian_sections(min_count=100)
    assert len(ds) > 20_000 and ds.num_labels >= 20
    assert len(set(ds.texts)) == len(ds.texts)
    counts = ds.label_counts()
    assert min(counts.values()) >= 100 and "games" in counts and "python" in counts
    games = [t for t, l in zip(ds.texts, ds.labels) if ds.label_names[l] == "games"]
    assert sum("game" in t.lower() for t in games) > len(games) / 2  # labels match the texts


def test_stdlib_docs_corpus():
    ds = stdlib_docs()
    assert len(ds) > 1000 and ds.num_labels >= 8
    assert "asyncio" in ds.label_names and min(ds.label_counts().values()) >= 60


def test_data_info_cli(tmp_path, capsys):
    from tunelab.cli import main

    path = tmp_path / "d.csv"
    path.write_text("text,label\nalpha beta,x\ngamma,y\ndelta,x\n")
    assert main(["data", "info", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["texts"] == 3 and summary["label_counts"] == {"x": 2, "y": 1}


@pytest.mark.parametrize("content, message", [
    (None, "file not found"),
    ('{"text": "a", "label": 1}\nnot json\n', "bad.jsonl:2: malformed JSON line"),
])
def test_data_info_bad_input_is_one_line_exit_2(tmp_path, capsys, content, message):
    from tunelab.cli import main

    path = tmp_path / "bad.jsonl"
    if content is not None:
        path.write_text(content)
    assert main(["data", "info", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
