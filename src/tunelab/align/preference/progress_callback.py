"""A Trainer callback drawing tunelab's rich progress bar on stderr (stdout stays clean for --json)."""

from __future__ import annotations

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from tunelab.progress import progress_bar


class RichProgressCallback(TrainerCallback):
    def __init__(self, description: str = "training"):
        self.description = description
        self._bar = None
        self._task = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._bar = progress_bar()
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=state.max_steps, completed=state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        if self._bar is not None:
            self._bar.update(self._task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._bar is not None and logs and "loss" in logs:
            self._bar.update(self._task, description=f"{self.description} (loss {logs['loss']:.4f})")

    def on_train_end(self, args, state, control, **kwargs):
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def use_rich_progress(trainer, description: str = "training") -> None:
    """Swap Trainer's stdout printers / tqdm bar for the stderr rich bar."""
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(RichProgressCallback(description))
