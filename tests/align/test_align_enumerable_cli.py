"""`tunelab align enumerable`: a thin view of EnumerableConfig that writes the benchmark's JSON and PNG."""

import dataclasses
import json

import pytest

from tunelab.align.preference.config_options import config_fields, field_value
from tunelab.align.preference.enumerable_study import EnumerableConfig, run_study
from tunelab.cli import main
from tunelab.io import to_jsonable

TINY = dict(prompts=2, positions=1, tokens=3, methods=("dpo", "epa:2:uniform"), sizes=(0, 4), seeds=(0,), inits=2,
            steps=3, hidden=8, layers=1, heads=2, intermediate=16)


def as_flags(settings: dict) -> list[str]:
    flags = []
    for name, value in settings.items():
        flags += [f"--{name.replace('_', '-')}", ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return flags


def test_every_config_field_is_an_option_with_its_default():
    from typer.main import get_command

    from tunelab.align.cli import app

    command = get_command(app).commands["enumerable"]
    options = {p.name: p.default for p in command.params}
    for field, _ in config_fields(EnumerableConfig):
        default = field.default
        assert options[field.name] == (",".join(map(str, default)) if isinstance(default, tuple) else default)


def test_cli_writes_what_the_library_run_writes(tmp_path, capsys):
    out = tmp_path / "enum"
    code = main(["align", "enumerable", *as_flags(TINY), "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    written = json.loads((out / "enumerable.json").read_text())
    cfg = EnumerableConfig(**TINY)
    assert written["config"] == to_jsonable(dataclasses.asdict(cfg))
    direct = json.loads(json.dumps(to_jsonable(run_study(cfg))))  # the same call, no store: same numbers
    assert written["cells"] == direct["cells"] and written["summary"] == direct["summary"]
    assert json.loads(captured.out) == written["summary"]
    assert set(written["summary"]["methods"]) == {"dpo", "epa(nw=2,uniform)"}
    assert (out / "enumerable.png").stat().st_size > 1000


@pytest.mark.parametrize("flags, message", [
    (["--sizes", "0,x"], "--sizes must be comma-separated ints"),
    (["--methods", "ipo"], "method 'ipo'"),
    (["--inits", "0"], "inits >= 1"),
])
def test_bad_flags_are_one_line_errors(tmp_path, capsys, flags, message):
    code = main(["align", "enumerable", *as_flags({**TINY, "steps": 1}), *flags, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o" / "enumerable.json").exists()


def test_field_value_parses_text_into_the_field_type():
    assert field_value(EnumerableConfig, "seeds", "3, 4") == (3, 4)
    assert field_value(EnumerableConfig, "methods", "dpo,epa:4") == ("dpo", "epa:4")
    assert field_value(EnumerableConfig, "beta", "0.5") == 0.5
    assert field_value(EnumerableConfig, "seeds", (1,)) == (1,)  # values already typed pass through


def test_optional_fields_take_none_and_bad_numbers_are_user_errors():
    from tunelab.align.preference.guard_config import DisplacementGuards
    from tunelab.errors import UserError

    assert field_value(DisplacementGuards, "weak_max_similarity", "none") is None
    assert field_value(DisplacementGuards, "weak_max_similarity", "0.5") == 0.5
    with pytest.raises(UserError, match="--weak-max-similarity must be float"):
        field_value(DisplacementGuards, "weak_max_similarity", "high")
    with pytest.raises(ValueError, match="no field"):
        config_fields(DisplacementGuards, ["nope"])
