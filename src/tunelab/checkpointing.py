"""Crash-safe Trainer checkpoints: each `checkpoint-N` appears complete or not at all.

Trainer writes weights, optimizer, RNG state and trainer_state.json one after another into `checkpoint-N`; a
kill in between leaves a folder that resume picks and then fails on. `AtomicCheckpoints` lets Trainer write into
`.checkpoint-staging/checkpoint-N` and renames the finished folder into place (a rename is atomic on one file
system). Stale staging left by a kill is removed by the next save. `LogAtCheckpoints` logs the loss at every
checkpoint and at the last step, so the log history a resume restores covers every step (`resume.run_train_loss`).
Resuming from the last step's checkpoint trains nothing more.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_utils import rotate_checkpoints

STAGING = ".checkpoint-staging"
PAUSE_ENV = "TUNELAB_CHECKPOINT_PAUSE_S"  # test hook: sleep this long in the middle of every save


class LogAtCheckpoints(TrainerCallback):
    """Make each save step and the final step a logging step (unless logging is off)."""

    def _log_if_saving(self, args, state, control, **kwargs):
        if args.logging_strategy != "no" and (control.should_save or state.global_step >= state.max_steps):
            control.should_log = True
        return control

    on_step_end = _log_if_saving
    on_epoch_end = _log_if_saving


def _pause_for_tests() -> None:
    seconds = float(os.environ.get(PAUSE_ENV) or 0)
    if seconds > 0:
        time.sleep(seconds)


def replace_folder(staged: Path, final: Path, trash: Path) -> None:
    """Move `staged` to `final`; an existing `final` goes to `trash` first (directories cannot be replaced)."""
    if final.exists():
        shutil.rmtree(trash, ignore_errors=True)
        os.rename(final, trash)
    os.rename(staged, final)
    shutil.rmtree(trash, ignore_errors=True)


class AtomicCheckpoints:
    """Trainer mixin (put it before `Trainer` in the bases)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_callback(LogAtCheckpoints)

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = Path(self._get_output_dir(trial=trial))
        staging = run_dir / STAGING
        name = f"checkpoint-{self.state.global_step}"
        if self.args.should_save:
            shutil.rmtree(staging, ignore_errors=True)  # what a killed save left
        self.accelerator.wait_for_everyone()
        self._get_output_dir = lambda trial=None: str(staging)  # Trainer writes staging/checkpoint-N
        try:
            super()._save_checkpoint(model, trial)
        finally:
            del self._get_output_dir
        self.accelerator.wait_for_everyone()  # every rank has written its part
        if not self.args.should_save:
            return
        best = self.state.best_global_step
        if best and (run_dir / f"checkpoint-{best}").is_dir():  # Trainer looked for it in the staging folder
            self.state.best_model_checkpoint = str(run_dir / f"checkpoint-{best}")
            self.state.save_to_json(str(staging / name / "trainer_state.json"))
        replace_folder(staging / name, run_dir / name, staging / f"old-{name}")
        shutil.rmtree(staging, ignore_errors=True)
        rotate_checkpoints(output_dir=str(run_dir), save_total_limit=self.args.save_total_limit,
                           best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)

    def _run_epoch(self, *args, **kwargs):
        # Resumed from the checkpoint of the last step in the middle of an epoch, Trainer would train one step
        # more before it checks max_steps (and a run killed after its last save would end one step too far).
        if 0 < self.state.max_steps <= self.state.global_step:
            self.control.should_training_stop = True
            return None
        return super()._run_epoch(*args, **kwargs)

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        _pause_for_tests()  # weights are written, trainer_state.json is not: the worst moment for a kill
        super()._save_optimizer_and_scheduler(output_dir)
