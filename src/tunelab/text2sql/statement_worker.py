"""User statements in a child process, so that the time budget and the memory limit hold for any statement.

Engines stop a statement between steps of work, never inside one call: DuckDB's interrupt is checked between
vectors, SQLite's progress handler between VM instructions. One huge call therefore runs to its end: DuckDB
`repeat('x', 1500000000)` 10-20 s past a 2 s budget at 3 GB resident (its string heap is outside `memory_limit`),
SQLite `printf('%.*c', 2147483647, 'x')` 7 s (its loop goes on after the length limit refuses the string),
`instr()` with a long needle for minutes. The child runs each statement with the engine's own timeout (the usual
way a statement stops, and the child lives on); the parent waits a grace period longer, watches the child's
resident memory against the limit, and kills it when either is exceeded; a spare child takes over.

Protocol: length-prefixed pickles over two pipes. First the parent sends (engine, path, options) and the child
replies ("ready",); then a request is (sql, timeout_s, max_rows, count_all) and a reply ("ok", QueryResult) or
("error", kind, message).
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
import weakref

from tunelab.text2sql.db import QueryResult, SQLError, parse_size

HEADER = struct.Struct("!Q")
POLL_S = 0.02  # how often the parent looks at the child's memory while it waits


def grace_s(timeout_s: float) -> float:
    """How long past the budget the parent waits for the child's own interrupt before killing it: inside the
    promised bound of 1.2 x budget + 0.2 s, with room left for the kill."""
    return 0.1 + 0.1 * timeout_s


def resident_bytes(pid: int) -> int | None:
    """A process's resident memory (Linux /proc); None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def send(fd: int, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def receive(fd: int):
    """One message (blocking); None at end of file."""
    head = _read_exactly(fd, HEADER.size)
    if head is None:
        return None
    body = _read_exactly(fd, HEADER.unpack(head)[0])
    return None if body is None else pickle.loads(body)


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class WorkerGone(Exception):
    """The child exited, was killed, or missed its deadline."""


class Child:
    """One child process: its pipes, what has arrived from it, and whether it has opened the database."""

    def __init__(self, engine: str, path: str, options: dict):
        child_in, self.to_child = os.pipe()
        self.from_child, child_out = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "tunelab.text2sql.statement_worker", str(child_in), str(child_out)],
            pass_fds=(child_in, child_out), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, close_fds=True)
        os.close(child_in)
        os.close(child_out)
        self.buffer = bytearray()  # grows in place: a large result arrives in many chunks
        self.ready = False
        self.base_rss: int | None = None
        self.stop = weakref.finalize(self, _stop, self.proc, self.to_child, self.from_child)  # once, and at exit
        send(self.to_child, (engine, path, options))

    def await_ready(self, until: float) -> None:
        reply = self.reply(until, limit_bytes=None)
        if reply[0] != "ready":
            raise WorkerGone(f"could not open the database: {reply[2]}")
        self.base_rss = resident_bytes(self.proc.pid)
        self.ready = True

    def reply(self, until: float, limit_bytes: int | None, on_wait=None):
        """The child's next message, read as it arrives; WorkerGone when it is late, too big or dead.
        `on_wait()` runs at each wait (the parent's chance to start a spare)."""
        while True:
            if len(self.buffer) >= HEADER.size:
                size = HEADER.unpack(self.buffer[:HEADER.size])[0]
                if len(self.buffer) >= HEADER.size + size:
                    body = bytes(self.buffer[HEADER.size:HEADER.size + size])
                    del self.buffer[:HEADER.size + size]
                    return pickle.loads(body)
            left = until - time.monotonic()
            if left <= 0:
                raise WorkerGone("timeout")
            if limit_bytes is not None:
                rss = resident_bytes(self.proc.pid)
                if rss is not None and rss > limit_bytes:
                    raise WorkerGone("memory")
            if on_wait is not None:
                on_wait()
            readable, _, _ = select.select([self.from_child], [], [], min(left, POLL_S))
            if readable:
                chunk = os.read(self.from_child, 1 << 20)
                if not chunk:
                    raise WorkerGone(f"exit code {self.proc.wait()}")
                self.buffer += chunk


class StatementWorker:
    """The parent's handle on the child that runs user statements: `run` one, `close` at the end. The child opens
    `engine` ("sqlite" or "duckdb") at `path` with `options` (the database class's keyword arguments).

    A statement still running at half its budget may well be killed: a spare child starts then, so that the
    statement after a kill finds one ready (a spare for every database would cost a process each, mostly idle).
    Waiting for a child to open the database is part of the statement's budget: a child not ready by the
    deadline is left to start, and the statement times out (only on a starved machine: a start is ~0.1-0.3 s)."""

    def __init__(self, engine: str, path, options: dict, memory_limit: str):
        self.engine, self.path, self.options = engine, str(path), dict(options)
        self.memory_limit = memory_limit
        self._limit = parse_size(memory_limit)
        self._child = self._new_child()  # starts now, ready by first use
        self._spare: Child | None = None

    def _new_child(self) -> Child:
        return Child(self.engine, self.path, self.options)

    @property
    def proc(self) -> subprocess.Popen:
        return self._child.proc

    @property
    def limit_bytes(self) -> int | None:
        """The resident size above which the current child is killed: its size at rest plus the memory limit
        and a tenth more (allocations beyond DuckDB's buffer pool, Python's result rows); None: not watched."""
        base = self._child.base_rss
        return None if self._limit is None or base is None else base + int(1.1 * self._limit)

    def _replace(self) -> None:
        """Kill the current child; the spare (or a new child) takes over."""
        self._child.stop()
        self._child, self._spare = self._spare or self._new_child(), None

    def close(self) -> None:
        self._child.stop()
        if self._spare is not None:
            self._spare.stop()

    def _ready_child(self, deadline: float, timeout_s: float) -> Child:
        if self._child.proc.poll() is not None:  # died while idle (killed from outside)
            self._replace()
        if not self._child.ready:
            try:
                self._child.await_ready(deadline)
            except WorkerGone as gone:
                if str(gone) == "timeout":  # still starting: it stays, and is ready for the next statement
                    raise SQLError("timeout", f"query exceeded the {timeout_s:g} s timeout (the query process "
                                              "was still starting)") from None
                self._replace()
                raise SQLError("error", f"the query process did not start ({gone})") from None
        return self._child

    # ------------------------------------------------------------------ statements
    def run(self, sql: str, timeout_s: float, max_rows: int | None, count_all: bool) -> QueryResult:
        start = time.monotonic()
        deadline = start + timeout_s
        child = self._ready_child(deadline, timeout_s)

        def start_spare() -> None:
            if self._spare is None and time.monotonic() - start > timeout_s / 2:
                self._spare = self._new_child()

        try:
            send(child.to_child, (sql, max(deadline - time.monotonic(), 1e-3), max_rows, count_all))
            reply = child.reply(deadline + grace_s(timeout_s), self.limit_bytes, start_spare)
        except WorkerGone as gone:
            self._replace()
            if str(gone) == "memory":
                raise SQLError("error", f"query stopped: it used more memory than the limit "
                                        f"({self.memory_limit})") from None
            if str(gone) == "timeout":
                raise SQLError("timeout", f"query exceeded the {timeout_s:g} s timeout") from None
            raise SQLError("error", f"the query process stopped ({gone})") from None
        except OSError as err:  # a pipe to a child that died
            self._replace()
            raise SQLError("error", f"the query process stopped ({err})") from None
        if reply[0] == "ok":
            return reply[1]
        raise SQLError(reply[1], reply[2])


def _stop(proc: subprocess.Popen, *fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
    if proc.poll() is None:
        proc.kill()  # a read-only child has nothing to save
    # reaped aside: tearing down a child of a few GB takes a while, which is not the statement's time
    threading.Thread(target=proc.wait, daemon=True).start()


# ====================================================================== the child

def serve(read_fd: int, write_fd: int) -> None:
    from tunelab.text2sql.db import DuckDBDatabase, SQLiteDatabase

    first = receive(read_fd)
    if first is None:
        return
    engine, path, options = first
    try:
        db = (SQLiteDatabase if engine == "sqlite" else DuckDBDatabase)(path, isolate=False, **options)
    except Exception as err:  # noqa: BLE001 - told to the parent, which restarts or reports
        send(write_fd, ("error", "error", f"{type(err).__name__}: {err}"))
        return
    send(write_fd, ("ready",))
    while (request := receive(read_fd)) is not None:
        sql, timeout_s, max_rows, count_all = request
        try:
            reply = ("ok", db._run(sql, (), timeout_s, max_rows, count_all, user=True))
        except SQLError as err:
            reply = ("error", err.kind, str(err))
        except Exception as err:  # noqa: BLE001 - whatever a statement raises is its answer, the child lives on
            reply = ("error", "error", f"{type(err).__name__}: {err}")
        send(write_fd, reply)


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
