"""Atomic file output: readers never see a half-written file, failed runs leave nothing behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def _tmp_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, _FILE_MODE)  # mkstemp makes owner-only files; outputs should read like any other file
    os.close(fd)
    return Path(name)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    tmp = _tmp_beside(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Numpy / torch scalars and arrays, paths and dataclasses to plain JSON types."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy / torch
        return obj.tolist()
    if isinstance(obj, float) and obj != obj:  # NaN is not valid JSON
        return None
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=indent, sort_keys=False) + "\n")


def atomic_savefig(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically (PNG unless the suffix says otherwise)."""
    path = Path(path)
    tmp = _tmp_beside(path)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


STAGED_PAUSE_ENV = "TUNELAB_STAGED_PAUSE_S"  # test hook: sleep this long between staging and moving into place


def _pause_for_tests() -> None:
    seconds = float(os.environ.get(STAGED_PAUSE_ENV) or 0)
    if seconds > 0:
        import time

        time.sleep(seconds)


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success its files replace `out`'s, on error it is removed.

    Existing files in `out` that the run did not produce are kept, so resuming into an
    output folder is safe. The folder's name holds the writer's pid, so the staging folder of a killed run is
    removed by the next run into the same `out`.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_pid_temps(out.parent, f".{out.name}", own=False)  # a killed run's staging (kills run no cleanup)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.staged-", suffix=".tmp", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes an owner-only folder; it may become `out` itself
    try:
        yield tmp
        _pause_for_tests()
        if not out.exists():  # the common case: one rename, so a kill leaves no `out` or a whole one
            os.rename(tmp, out)
            return
        for item in sorted(tmp.rglob("*")):
            if item.is_file():
                dest = out / item.relative_to(tmp)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(item, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_pid_temps(folder: str | os.PathLike, stem: str, own: bool = True) -> list[Path]:
    """Remove `{stem}.{pid}.tmp*` and `{stem}.{pid}.staged-*.tmp` entries (files, SQLite journals, folders)
    whose writer process is gone.

    A SIGKILLed writer runs no cleanup, so its temp output stays behind; the next writer removes it. Temps of
    live processes (a concurrent build) are left alone; this process's own ones go unless `own` is False.
    Returns what was removed.
    """
    pattern = re.compile(re.escape(stem) + r"\.(\d+)(\.staged-\w+)?\.tmp(-journal|-wal|-shm)?$")
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = pattern.match(entry.name)
        pid = int(match.group(1)) if match else None
        if pid is None or (pid == os.getpid() and not own) or (pid != os.getpid() and _pid_alive(pid)):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed
