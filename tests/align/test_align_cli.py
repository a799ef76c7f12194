"""`tunelab align ...`: bad input is one line + exit 2 with nothing under --out; train / theory run end to end."""

import json

import pytest

from tunelab.cli import main


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("rows, extra, message", [
    ([{"prompt": "p", "chosen": "c"}], [], "missing column"),
    ([{"prompt": "p", "chosen": "", "rejected": "r"}], [], "non-empty"),
    ([{"prompt": "p", "chosen": "c", "rejected": "r"}], ["--method", "epa", "--ns", "2"], "fewer than ns=2"),
    ([{"prompt": "p", "chosen": "c", "rejected": "r"}], ["--method", "dpo", "--nw", "3"], "DPO uses exactly one"),
    ([{"prompt": "p", "chosen": "c", "rejected": "r"}], ["--method", "ppo"], "unknown method"),
])
def test_train_bad_input(tmp_path, capsys, rows, extra, message):
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    code = main(["align", "train", "--data", str(data), "--out", str(tmp_path / "out"), "--model", "tiny-llama", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_train_prompt_too_long(tmp_path, capsys):
    rows = [{"prompt": "word " * 300, "chosen": "c", "rejected": "r"}, {"prompt": "p", "chosen": "c", "rejected": "r"}]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    code = main(["align", "train", "--data", str(data), "--out", str(tmp_path / "out"), "--model", "tiny-llama",
                 "--max-length", "64"])
    assert code == 2 and "max_length" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_train_epa_tiny_end_to_end(tmp_path, capsys):
    rows = [{"prompt": f"Tell me about {i}", "chosen": f"{i} is fine.", "rejected": [f"no {i}", f"never {i}"]}
            for i in range(4)]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    code = main(["align", "train", "--data", str(data), "--out", str(tmp_path / "out"), "--model", "tiny-llama",
                 "--method", "epa", "--ns", "2", "--nw", "1", "--steps", "2", "--batch-size", "2", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["steps"] == 2 and "rewards/weak" in summary["final"]
    assert (tmp_path / "out" / "model" / "adapter_config.json").is_file()
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["method"] == "epa"


def test_theory_cli_writes_json_and_png(tmp_path, capsys):
    code = main(["align", "theory", "--prompts", "3", "--responses", "4", "--inits", "2", "--nw", "4",
                 "--out", str(tmp_path / "t"), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in result["results"]] == ["dpo", "epa(nw=4)", "epa(nw=4, other-prompts)"]
    assert (tmp_path / "t" / "theory.png").stat().st_size > 1000


def test_train_resume_last_ignores_stray_checkpoint_folders(tmp_path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r"}])
    (tmp_path / "out-checkpoints" / "checkpoint-abc").mkdir(parents=True)
    code = main(["align", "train", "--data", str(data), "--out", str(tmp_path / "out"), "--model", "tiny-llama",
                 "--method", "dpo", "--resume", "last"])
    err = capsys.readouterr().err
    assert code == 2 and "no checkpoint under" in err and "Traceback" not in err


def _command_defaults(name):
    import typer.main

    from tunelab.align.cli import app

    command = typer.main.get_command(app).commands[name]
    return {p.name: p.default for p in command.params if p.name not in ("out", "as_json", "help")}


def test_study_command_defaults_are_study_config_defaults():
    import dataclasses

    from tunelab.align.preference.study import StudyConfig

    fields = {f.name: f.default for f in dataclasses.fields(StudyConfig)}
    flags = {"lr": "learning_rate", "nw": "num_weak", "ns": "num_strong"}  # flags named other than their field
    for option, default in _command_defaults("study").items():
        field = flags.get(option, option)
        assert field in fields, f"--{option} is no StudyConfig field"
        expected = ",".join(map(str, fields[field])) if isinstance(fields[field], tuple) else fields[field]
        assert default == expected, f"--{option} defaults to {default!r}, StudyConfig.{field} to {expected!r}"


def test_train_command_defaults_are_the_config_dataclasses():
    import dataclasses

    from tunelab.align.preference.config import AlignConfig
    from tunelab.align.preference.options import PreferenceOptions, TrainSchedule

    defaults = _command_defaults("train")
    for cls in (PreferenceOptions, TrainSchedule):
        for f in dataclasses.fields(cls):
            shown = defaults[f.name]
            stored = "none" if f.default is None and shown == "none" else f.default
            assert shown in (stored, str(stored)), f"--{f.name}: {shown!r} vs {cls.__name__}.{f.name} {f.default!r}"
    config = AlignConfig(output_dir="x")  # the trainer's own defaults are PreferenceOptions' (inherited, not copied)
    for f in dataclasses.fields(PreferenceOptions):
        if f.name not in ("method", "num_weak"):  # resolved in __post_init__ (epa, 2 weak negatives)
            assert getattr(config, f.name) == f.default
