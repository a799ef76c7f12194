"""The adapters CLI and the user-facing errors (one line, exit 2, nothing written)."""

import copy
import json

import pytest
import torch
from peft import PeftModel
from tunelab.adapters.attach import attach, load_adapter, make_config
from tunelab.cli import main
from tunelab.errors import UserError

from adapters_testkit import make_base, perturb, targets


def write_csv(path, n=48):
    words = {"net": ["socket", "http", "url", "server"], "text": ["string", "format", "parse", "unicode"]}
    lines = ["text,label"]
    for i in range(n):
        label = "net" if i % 2 else "text"
        lines.append(f"{words[label][i % 4]} handling routine number {i},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_rank_must_be_positive():
    with pytest.raises(UserError, match="rank"):
        make_config("bora", r=0, target_modules=["up"])


def test_unknown_adapter_and_order():
    with pytest.raises(UserError, match="unknown adapter"):
        make_config("vera", r=2, target_modules=["up"])
    with pytest.raises(UserError, match="order"):
        make_config("bora", r=2, target_modules=["up"], order="sideways")


def test_missing_target_modules_is_one_line():
    with pytest.raises(UserError, match="not found in the model: q_proj"):
        attach(make_base("linear"), make_config("bora", r=2, target_modules=["up", "q_proj"]))


def test_loading_into_another_shape_is_one_line(tmp_path):
    model = attach(make_base("linear"), make_config("bora", r=2, target_modules=targets("linear")))
    model.save_pretrained(tmp_path)
    other = make_base("linear")
    other.up = torch.nn.Linear(12, 11)
    other.down = torch.nn.Linear(11, 5, bias=False)
    with pytest.raises(UserError, match="does not fit this model"):
        load_adapter(other, tmp_path)


def test_load_adapter_helper_round_trip(tmp_path):
    base = make_base("conv1d")
    model = attach(copy.deepcopy(base), make_config("bora", r=2, order="in_first", target_modules=targets("conv1d")))
    perturb(model)
    x = torch.randn(3, 12)
    model.save_pretrained(tmp_path)
    loaded = load_adapter(copy.deepcopy(base), tmp_path)
    assert isinstance(loaded, PeftModel)
    assert torch.equal(loaded(x), model(x))


def test_cli_train_writes_adapter_and_metrics(tmp_path, capsys):
    data = write_csv(tmp_path / "tiny.csv")
    out = tmp_path / "run"
    code = main(["adapters", "train", "--adapter", "bora", "--data", str(data), "--encoder", "tiny-bert",
                 "--r", "2", "--epochs", "1", "--batch-size", "8", "--max-length", "16", "--max-train", "32",
                 "--max-test", "16", "--out", str(out), "--json"])
    assert code == 0
    metrics = json.loads(capsys.readouterr().out)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["settings"]["adapter"] == "bora"
    assert json.loads((out / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]
    saved = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert saved["use_bidim_weight_decomposition"] is True and saved["r"] == 2


@pytest.mark.parametrize("argv, message", [
    (["--adapter", "bora", "--r", "0"], "rank must be a positive integer"),
    (["--adapter", "fancy"], "unknown adapter"),
    (["--adapter", "bora", "--order", "diagonal"], "order must be one of"),
    (["--adapter", "lora", "--data", "/nonexistent/file.csv"], ""),
])
def test_cli_train_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    out = tmp_path / "never"
    code = main(["adapters", "train", "--encoder", "tiny-bert", "--out", str(out), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and message in err
    assert not out.exists()


def test_cli_bench_on_tiny_llama(tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(["adapters", "bench", "--model", "tiny-llama", "--methods", "lora,dora,bora", "--r", "2",
                 "--seq-len", "4", "--repeats", "1", "--no-profile-memory", "--out", str(out), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    rows = result["training"]
    assert set(rows) == {"lora", "dora", "bora"}
    assert rows["dora"]["time_vs_dora"] == pytest.approx(1.0)
    assert rows["dora"]["round_ratio_vs_dora"]["median"] == pytest.approx(1.0)
    # DoRA's norm and rescaling are extra dispatched ops on top of LoRA's; the GEMMs differ only by B @ A
    assert rows["lora"]["aten_ops"] < rows["dora"]["aten_ops"]
    assert rows["bora"]["matmul_gflops"] == pytest.approx(rows["dora"]["matmul_gflops"], rel=0.05)
    # BoRA has one magnitude per output and per input on top of LoRA's A and B; DoRA only per output
    assert rows["lora"]["trainable_parameters"] < rows["dora"]["trainable_parameters"] < rows["bora"]["trainable_parameters"]
    assert rows["lora"]["saved_activation_mb"] < rows["dora"]["saved_activation_mb"]
    assert result["inference"]["merged_vs_base"] > 0
    assert json.loads((out / "bench.json").read_text())["r"] == 2


def test_cli_bench_rejects_unknown_method(capsys):
    assert main(["adapters", "bench", "--model", "tiny-llama", "--methods", "lora,ia3"]) == 2
    assert "unknown method" in capsys.readouterr().err
