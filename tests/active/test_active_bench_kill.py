"""The benchmark's store survives kill -9: killed at random moments and rerun, it ends with the results of an
uninterrupted run (runs are seeded per round, so the curves match exactly) and never an unreadable state."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from tunelab.active.bench import CorpusSpec, run_benchmark
    from tunelab.active.classifier import ClassifierConfig

    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    spec = CorpusSpec(str(data), max_pool=None, max_test=None, initial_size=9, query_size=6, rounds=3, max_length=16)
    results = run_benchmark(out, corpora=[spec], strategies=("random", "vapal-badge", "badge"), seeds=(0, 1),
                            classifier_config=ClassifierConfig(encoder="tiny-bert", max_length=16), progress=False)
""")


def _curves(out) -> dict:
    results = json.loads((out / "results.json").read_text())
    return {name: s["aulc_mean"] for corpus in results["corpora"].values() for name, s in corpus["summary"].items()}


@pytest.mark.slow
def test_benchmark_store_resumes_after_kills(tmp_path):
    words = {"a": "ball goal team", "b": "python bug compile", "c": "bread soup salt"}
    rows = [{"text": f"{w} number {i}", "label": k} for i in range(40) for k, w in words.items()]
    data = tmp_path / "tiny.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    script = tmp_path / "bench.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "TUNELAB_CACHE": str(tmp_path / "cache"), "TUNELAB_QUIET": "1"}
    run = lambda out: subprocess.Popen([sys.executable, str(script), str(data), str(out)], env=env,  # noqa: E731
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    reference = tmp_path / "uninterrupted"
    assert run(reference).wait(timeout=600) == 0
    killed, rng, kills = tmp_path / "killed", random.Random(0), 0
    for _ in range(30):
        proc = run(killed)
        runs = killed / "runs"
        deadline = time.monotonic() + 120  # wait until this attempt has added a state file, then kill at random
        before = len(list(runs.rglob("*.json"))) if runs.exists() else 0
        while proc.poll() is None and time.monotonic() < deadline and \
                (len(list(runs.rglob("*.json"))) if runs.exists() else 0) <= before:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.2))  # runs take well under a second on an idle machine
        if proc.poll() is None and kills < 5:  # each attempt adds at least one state before its kill
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            for state in runs.rglob("*.json"):  # every state on disk is whole
                json.loads(state.read_text())
            continue
        assert proc.wait(timeout=600) == 0, proc.stderr.read().decode()[-2000:]
        break
    assert kills >= 2, kills  # 4 of 5 on an idle 2-core machine: later attempts finish before a kill
    assert _curves(killed) == _curves(reference)
