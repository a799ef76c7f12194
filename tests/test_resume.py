"""The shared resume helper: numeric order, stray names ignored, incomplete checkpoints skipped with a notice,
and the run's train loss over every step across resumes."""

import json
import struct

import pytest

from tunelab.resume import checkpoint_problem, last_checkpoint, run_train_loss


def _safetensors(path, payload: int = 16, cut: int = 0) -> None:
    """A minimal safetensors file holding one float32 tensor of `payload` bytes; `cut` bytes cut off its end."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [payload // 4], "data_offsets": [0, payload]}}).encode()
    data = struct.pack("<Q", len(header)) + header + b"\0" * payload
    path.write_bytes(data[: len(data) - cut])


def _checkpoint(folder, state: bool = True, cut: int = 0):
    folder.mkdir()
    if state:
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": 1}))
    _safetensors(folder / "model.safetensors", cut=cut)
    return folder


def test_last_checkpoint_is_highest_numbered(tmp_path):
    assert last_checkpoint(tmp_path / "missing") is None
    assert last_checkpoint(tmp_path) is None
    for name in ["checkpoint-2", "checkpoint-10", "checkpoint-100", "checkpoint-abc"]:
        _checkpoint(tmp_path / name)
    (tmp_path / "checkpoint-999").write_text("a file, not a checkpoint")
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-100"


@pytest.mark.parametrize("broken", ["no state", "cut weights", "cut state", "no weights"])
def test_incomplete_checkpoint_is_skipped_with_one_notice(tmp_path, broken):
    _checkpoint(tmp_path / "checkpoint-4")
    latest = _checkpoint(tmp_path / "checkpoint-8", state=broken != "no state", cut=8 if broken == "cut weights" else 0)
    if broken == "cut state":
        (latest / "trainer_state.json").write_text('{"global_st')
    if broken == "no weights":
        (latest / "model.safetensors").unlink()
    notices = []
    assert checkpoint_problem(latest) is not None
    assert last_checkpoint(tmp_path, notice=notices.append) == tmp_path / "checkpoint-4"
    assert len(notices) == 1 and "checkpoint-8" in notices[0]


def test_run_train_loss_weights_each_log_by_its_step_span():
    # logs at steps 2, 6 and 7 with the mean loss since the previous log: (2*1.0 + 4*0.5 + 1*2.0) / 7
    history = [{"loss": 1.0, "step": 2}, {"eval_loss": 9.0, "step": 2}, {"loss": 0.5, "step": 6},
               {"loss": 2.0, "step": 7}]
    assert run_train_loss(history) == pytest.approx(6.0 / 7)
    assert run_train_loss([], fallback=1.25) == 1.25
