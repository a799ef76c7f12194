"""`tunelab align poft score|train`: outputs, and user mistakes as one line on stderr with exit code 2."""

import json

import pytest

from tunelab.cli import main

RECORDS = [{"prompt": "What is 2 + 3?", "response": "5"}, {"prompt": "What is 7 * 8?", "response": "56"},
           {"prompt": "Convert 2 km to m.", "response": "2000"}]


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _one_line_error(capsys, match):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and match in err, err
    assert "Traceback" not in err


def test_score_then_train_refuses_edited_data(tmp_path, capsys):
    data = _write(tmp_path / "sft.jsonl", RECORDS)
    scores = tmp_path / "scores.json"
    assert main(["align", "poft", "score", "--data", str(data), "-a", "tiny-llama", "--out", str(scores),
                 "--cache-dir", str(tmp_path / "cache"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["examples"] == 3 and json.loads(scores.read_text())["models"] == ["tiny-llama"]
    edited = _write(tmp_path / "edited.jsonl", RECORDS[:2] + [{"prompt": "Convert 2 km to m.", "response": "200"}])
    out = tmp_path / "run"
    assert main(["align", "poft", "train", "--data", str(edited), "--target", "tiny-llama", "--scores", str(scores),
                 "--out", str(out)]) == 2
    _one_line_error(capsys, "computed for other data")
    assert not out.exists()


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    empty = _write(tmp_path / "empty.jsonl", RECORDS[:1] + [{"prompt": "p", "response": ""}])
    assert main(["align", "poft", "score", "--data", str(empty), "-a", "tiny-llama", "--out",
                 str(tmp_path / "s.json")]) == 2
    _one_line_error(capsys, "example 1: empty response")
    broken = tmp_path / "not-a-model"
    broken.mkdir()
    data = _write(tmp_path / "sft.jsonl", RECORDS)
    assert main(["align", "poft", "score", "--data", str(data), "-a", str(broken), "--out", str(tmp_path / "s.json"),
                 "--cache-dir", str(tmp_path / "cache")]) == 2
    _one_line_error(capsys, "cannot be loaded")
    assert not (tmp_path / "s.json").exists()
    (tmp_path / "garbage.json").write_text("[1, 2]")
    assert main(["align", "poft", "train", "--data", str(data), "--scores", str(tmp_path / "garbage.json"),
                 "--out", str(tmp_path / "run")]) == 2
    _one_line_error(capsys, "not a PoFT scores file")
    assert main(["align", "poft", "train", "--data", str(data), "--out", str(tmp_path / "run")]) == 2
    _one_line_error(capsys, "needs reference scores")
    assert main(["align", "poft", "study", "--task", "calculus", "--out", str(tmp_path / "study")]) == 2
    _one_line_error(capsys, "unknown task 'calculus'")
    assert not (tmp_path / "study").exists()


@pytest.mark.slow
def test_train_sft_baseline_writes_model(tmp_path, capsys):
    data = _write(tmp_path / "sft.jsonl", RECORDS)
    assert main(["align", "poft", "train", "--data", str(data), "--target", "tiny-llama", "--loss", "sft",
                 "--max-steps", "1", "--batch-size", "3", "--lora-r", "4", "--out", str(tmp_path / "run"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 1  # stdout holds only the JSON summary
    assert (tmp_path / "run" / "model" / "adapter_config.json").is_file()
    saved = json.loads((tmp_path / "run" / "model" / "poft_summary.json").read_text())
    assert saved["loss_type"] == "sft" and saved["steps"] == 1 and saved["aligned_models"] == []
