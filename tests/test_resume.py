"""The shared resume helper: numeric order, stray names ignored, no folder is no checkpoint."""

from tunelab.resume import last_checkpoint


def test_last_checkpoint_is_highest_numbered(tmp_path):
    assert last_checkpoint(tmp_path / "missing") is None
    assert last_checkpoint(tmp_path) is None
    for name in ["checkpoint-2", "checkpoint-10", "checkpoint-100", "checkpoint-abc"]:
        (tmp_path / name).mkdir()
    (tmp_path / "checkpoint-999").write_text("a file, not a checkpoint")
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-100"
