"""Progress bars for long work (rich), quiet when TUNELAB_QUIET=1, when asked, and on every process but the main
one of a distributed launch (torchrun / accelerate set RANK)."""

from __future__ import annotations

import os
from typing import Iterable, Iterator, TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")


def quiet() -> bool:
    return os.environ.get("TUNELAB_QUIET", "") not in ("", "0") or os.environ.get("RANK", "0") != "0"


def progress_bar(transient: bool = False) -> Progress:
    """A rich Progress with the columns tunelab uses everywhere (stderr, so --json output stays clean)."""
    from rich.console import Console

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=transient,
        disable=quiet(),
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on stderr."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress_bar() as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)
