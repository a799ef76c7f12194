"""The benchmark harness: a store that resumes and survives SIGKILL, machine info, the one-spelling conversion."""

from __future__ import annotations

import json
import os
import platform
import random
import signal
import subprocess
import sys
import textwrap
import time
from importlib import metadata
from pathlib import Path

import pytest

from tunelab.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def harness():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT))
        import benchmarks._harness as module

        yield module


def test_store_resumes_with_the_finished_runs(harness, tmp_path):
    path = tmp_path / "results" / "study.json"
    store = harness.Store(path, settings={"lr": 0.1})
    assert not store.done("a") and store.runs == {}
    store.put("a", {"accuracy": 0.5})
    store.update(summary=[1, 2])
    again = harness.Store(path, settings={"lr": 0.1})
    assert again.done("a") and not again.done("b")
    assert again.runs == {"a": {"accuracy": 0.5}} and again.data["summary"] == [1, 2]
    assert json.loads(path.read_text()) == {"runs": {"a": {"accuracy": 0.5}}, "settings": {"lr": 0.1},
                                            "summary": [1, 2]}
    again.drop(["a"])
    assert not harness.Store(path).done("a")


def test_store_refuses_runs_made_with_other_settings(harness, tmp_path):
    path = tmp_path / "study.json"
    harness.Store(path, settings={"lr": 0.1, "seeds": [0]}).put("a", 1)
    with pytest.raises(UserError, match=r"settings differ .*\(lr\)"):
        harness.Store(path, settings={"lr": 0.2, "seeds": [0]})
    harness.Store(path, settings={"lr": 0.1, "seeds": [0]})  # the same settings resume
    empty = tmp_path / "empty.json"
    harness.Store(empty, settings={"lr": 0.1}).save()
    assert harness.Store(empty, settings={"lr": 0.3}).data["settings"] == {"lr": 0.3}  # no runs: nothing to mix


def test_store_names_a_damaged_file(harness, tmp_path):
    path = tmp_path / "study.json"
    path.write_text('{"runs": {"a": ')
    with pytest.raises(UserError, match="not valid JSON"):
        harness.Store(path)


N_RUNS = 120
_WRITER = textwrap.dedent(f"""
    import sys
    from benchmarks._harness import Store
    store = Store(sys.argv[1], settings={{"n": {N_RUNS}}})
    for i in range({N_RUNS}):
        key = f"run{{i:03d}}"
        if not store.done(key):
            store.put(key, {{"i": i, "payload": "x" * (10000 + i)}})
            print(key, flush=True)
""")


def _record(i: int) -> dict:
    return {"i": i, "payload": "x" * (10000 + i)}


def test_killed_writes_leave_a_whole_file_and_resume_to_the_full_result(harness, tmp_path):
    """SIGKILL after a random number of runs plus up to 20 ms (inside the next dump or write of a ~1 MB file)."""
    path = tmp_path / "study.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    rng = random.Random(0)
    kills = 0
    while kills < 8:
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, text=True)
        wanted = rng.randint(1, 12)
        for _ in range(wanted):
            if not proc.stdout.readline():
                break
        time.sleep(rng.uniform(0, 0.02))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        proc.stdout.close()
        runs = json.loads(path.read_text())["runs"]  # valid JSON holding the first k runs, each whole
        assert list(runs) == [f"run{i:03d}" for i in range(len(runs))]
        assert all(runs[k] == _record(i) for i, k in enumerate(runs))
        if len(runs) == N_RUNS:
            break
    assert kills >= 3, "the writer finished before the kills; the test did not exercise them"
    subprocess.run([sys.executable, "-c", _WRITER, str(path)], env=env, cwd=tmp_path, check=True,
                   stdout=subprocess.DEVNULL)
    assert harness.Store(path).runs == {f"run{i:03d}": _record(i) for i in range(N_RUNS)}
    # a kill inside a write leaves the writer's temporary file (never a damaged study.json); reopening removes it
    assert [p.name for p in tmp_path.iterdir()] == ["study.json"]


def test_machine_info_has_the_one_spelling(harness):
    import torch

    info = harness.machine_info(["pytest", "surely-not-installed-package"])
    assert {"python", "platform", "cpus", "torch", "torch_threads", "packages"} <= set(info)
    assert info["python"] == platform.python_version() and info["cpus"] == os.cpu_count()
    assert info["torch_threads"] == torch.get_num_threads() and info["torch"] == torch.__version__
    assert info["packages"] == {"pytest": metadata.version("pytest"), "surely-not-installed-package": None}
    assert harness.load_average() >= 0.0


def test_old_machine_keys_move_to_the_one_spelling_and_results_stay(harness, tmp_path):
    old = {"torch_threads": 2, "machine_load_1min": 4.5, "cpus": 2, "summary": {"agent": {"ex": 86.25}},
           "records": {"agent": [1, 2]}}
    new = harness.unify_machine_keys(old)
    assert new == {"summary": old["summary"], "records": old["records"],
                   harness.LOAD_KEY: [4.5], harness.MACHINE_KEY: {"cpus": 2, "torch_threads": 2}}
    assert harness.unify_machine_keys(new) == new  # idempotent
    path = tmp_path / "r.json"
    path.write_text(json.dumps(old))
    assert harness.convert_file(path) and json.loads(path.read_text()) == new
    assert not harness.convert_file(path)
    sentence = {"machine": "2 CPU threads, torch 2.13.0+cpu, NVIDIA H200", "load_average_1min": 2.25, "r": 0.9}
    assert harness.unify_machine_keys(sentence) == {
        "machine": {"torch_threads": 2, "torch": "2.13.0+cpu", "gpu": "NVIDIA H200"}, "load_average_1min": [2.25],
        "r": 0.9}


def test_write_readme_joins_the_parts(harness, tmp_path):
    path = harness.write_readme(tmp_path / "README.md", ["# title\n", "| a |\n|---|\n| 1 |\n"])
    assert path.read_text() == "# title\n\n| a |\n|---|\n| 1 |\n"
