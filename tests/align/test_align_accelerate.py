"""`tunelab align train` under a real `accelerate launch --multi_gpu --num_processes 2` on CPU (gloo): one
training sharded over both processes, one summary line, one output folder with one metrics.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _conversation(i: int, good: bool) -> list[dict]:
    answer = f"Item {i} is {'red green blue small large'.split()[i % 5]}." if good else f"No idea about item {i}."
    return [{"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": f"Tell me about item {i}."},
            {"role": "assistant", "content": "Which item?"},
            {"role": "user", "content": f"Item {i}, please."},
            {"role": "assistant", "content": answer}]


def _write(path: Path, ids) -> Path:
    # TRL's implicit-prompt conversational format: chosen/rejected conversations, no prompt column
    path.write_text("".join(json.dumps({"chosen": _conversation(i, True), "rejected": _conversation(i, False)}) + "\n"
                            for i in ids))
    return path


@pytest.mark.slow
def test_two_process_launch_trains_once_and_writes_one_folder(tmp_path):
    train = _write(tmp_path / "train.jsonl", range(16))
    evaluation = _write(tmp_path / "eval.jsonl", range(100, 108))
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}  # no hint that this is a CPU
    env.update(OMP_NUM_THREADS="1")
    env.pop("TUNELAB_QUIET", None)
    # accelerate is a dependency of transformers' Trainer: its launcher runs from this interpreter
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "tunelab.cli", "align", "train",
                           "--data", str(train), "--eval-data", str(evaluation), "--model", "tiny-llama",
                           "--steps", "4", "--batch-size", "2", "--eval-steps", "2", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = [line for line in proc.stdout.splitlines() if line.startswith("epa: 4 steps")]
    assert len(summaries) == 1, proc.stdout  # only the main process prints
    assert proc.stderr.count("epa training") == 1, proc.stderr[-3000:]  # and shows progress
    metrics = json.loads((out / "metrics.json").read_text())
    # 2 processes x 2 prompts x 4 steps = all 16 records once: the data was sharded, not trained twice
    assert metrics["final"]["epoch"] == pytest.approx(1.0)
    assert "eval_rewards/accuracies" in metrics["eval"]
    assert (out / "model" / "adapter_config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.jsonl", "run", "train.jsonl"]  # one output folder
