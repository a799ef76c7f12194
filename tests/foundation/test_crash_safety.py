"""Crash safety: runs SIGKILLed at random moments (some inside a checkpoint save) resume to the same result as an
uninterrupted run, never leave an unresumable checkpoint or a half-written output, and damaged caches are
detected, named and rebuilt.

Determinism on CPU: tiny-llama training (DPO and PoFT, LoRA, no dropout) replays bit for bit after a resume, because
Trainer restores the RNG states and skips the batches already seen, so losses and weights are compared to 1e-6;
active-learning rounds are seeded per round, so a resumed record equals the uninterrupted one exactly (timings aside).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunelab.checkpointing import PAUSE_ENV, STAGING
from tunelab.resume import checkpoint_problem, numbered_checkpoints

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for hook in (PAUSE_ENV, "TUNELAB_STAGED_PAUSE_S"):
        env.pop(hook, None)
    env.update(extra)
    return env


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "tunelab.cli", *argv], stdout=out, stderr=out, env=env,
                            stdin=subprocess.DEVNULL, cwd=log.parent)


def _run(argv: list[str], env: dict[str, str], log: Path, timeout: float = 600) -> None:
    proc = _start(argv, env, log)
    assert proc.wait(timeout) == 0, log.read_text()[-3000:]


def _wait_until(proc: subprocess.Popen, condition, timeout: float = 300) -> bool:
    """True once `condition()` holds while `proc` still runs; False when `proc` ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if condition():
            return True
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the run")


def _kill(proc: subprocess.Popen) -> bool:
    """SIGKILL `proc`; False when it had already finished by itself."""
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def _highest(folder: Path) -> int:
    found = numbered_checkpoints(folder)
    return int(found[0].name.split("-")[1]) if found else 0


def _staged_weights(ckdir: Path) -> bool:
    return any(p.stat().st_size > 0 for p in (ckdir / STAGING).glob("checkpoint-*/*.safetensors"))


def _assert_resumable(ckdir: Path) -> None:
    for folder in numbered_checkpoints(ckdir):
        assert checkpoint_problem(folder) is None, f"{folder}: {checkpoint_problem(folder)}"


def kill_and_resume(fresh: list[str], resume: list[str], ckdir: Path, final: Path, env: dict[str, str], log: Path,
                    kills: int, seed: int) -> dict:
    """Start `fresh` (or `resume` once a checkpoint exists), SIGKILL it `kills` times, half of them inside a save
    (the save sleeps between weights and trainer state), the others at a random moment after it made progress;
    then let it finish. Every checkpoint left must be complete, and `final` (the last file the run writes, in
    its output folder) present whenever that folder is: a folder written atomically is never half there."""
    rng = random.Random(seed)
    done = {"mid_save": 0, "random": 0}
    while sum(done.values()) < kills:
        mid_save = rng.random() < 0.5
        start = _highest(ckdir)
        argv = resume if start else fresh
        proc = _start(argv, {**env, PAUSE_ENV: "120" if mid_save else "0"}, log)
        if mid_save:
            reached = _wait_until(proc, lambda: _staged_weights(ckdir))
        else:  # at least one new checkpoint, then anywhere in the next steps (also inside saves or the final write)
            reached = _wait_until(proc, lambda: _highest(ckdir) > start or _staged_weights(ckdir))
            if reached:
                time.sleep(rng.uniform(0.0, 0.5))
        if not _kill(proc):
            assert proc.returncode == 0, log.read_text()[-3000:]
            break  # finished before the kill: nothing left to interrupt
        done["mid_save" if mid_save else "random"] += 1
        _assert_resumable(ckdir)
        assert not final.parent.exists() or final.is_file(), "a killed run left a half-written output folder"
        if final.is_file():
            break  # killed after it finished: nothing left to interrupt
    if not final.is_file():
        _run(resume if _highest(ckdir) else fresh, env, log)
    _assert_resumable(ckdir)
    return done


def _losses(out: Path) -> list[tuple[int, float]]:
    history = json.loads((out / "log_history.json").read_text())
    return [(h["step"], h["loss"]) for h in history if "loss" in h]


def _tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


PREFS = [{"prompt": f"Tell me about {i}", "chosen": f"{i} is a fine thing.", "rejected": f"no {i} ever"}
         for i in range(6)]


@pytest.mark.slow
def test_align_train_survives_twenty_kills(tmp_path):
    data = tmp_path / "prefs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in PREFS))
    common = ["align", "train", "--data", str(data), "--model", "tiny-llama", "--method", "dpo", "--steps", "40",
              "--batch-size", "2", "--save-steps", "2", "--lr", "1e-3", "--lora-r", "4", "--seed", "3"]
    env = _env(tmp_path)
    _run([*common, "--out", str(tmp_path / "ref")], env, tmp_path / "ref.log")
    out = tmp_path / "run"
    fresh = [*common, "--out", str(out)]
    done = kill_and_resume(fresh, [*fresh, "--resume", "last"], tmp_path / "run-checkpoints", out / "metrics.json", env,
                           tmp_path / "run.log", kills=20, seed=0)
    assert done["mid_save"] >= 5 and done["random"] >= 5 and sum(done.values()) == 20, done
    ref, got = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "ref", out))
    assert got["steps"] == ref["steps"] == 40
    assert got["train_loss"] == pytest.approx(ref["train_loss"], abs=1e-6)
    ref_losses, got_losses = _losses(tmp_path / "ref"), _losses(out)
    assert [s for s, _ in got_losses] == [s for s, _ in ref_losses]
    assert [l for _, l in got_losses] == pytest.approx([l for _, l in ref_losses], abs=1e-6)
    ref_w, got_w = (_tensors(d / "model" / "adapter_model.safetensors") for d in (tmp_path / "ref", out))
    assert ref_w.keys() == got_w.keys()
    assert max(float((ref_w[k] - got_w[k]).abs().max()) for k in ref_w) < 1e-6



@pytest.mark.slow
def test_poft_train_survives_kills(tmp_path):
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Say {i}", "response": f"{i} said twice"}) + "\n" for i in range(6)))
    common = ["align", "poft", "train", "--data", str(data), "--target", "tiny-llama", "--aligned-model", "tiny-llama",
              "--cache-dir", str(tmp_path / "scores"), "--max-steps", "40", "--batch-size", "2", "--save-steps", "2",
              "--lora-r", "4", "--max-length", "64", "--seed", "1", "--json"]
    env = _env(tmp_path)
    _run([*common, "--out", str(tmp_path / "ref")], env, tmp_path / "ref.log")
    out = tmp_path / "run"
    fresh = [*common, "--out", str(out)]
    done = kill_and_resume(fresh, [*fresh, "--resume"], out / "checkpoints", out / "model" / "poft_summary.json",
                           env, tmp_path / "run.log", kills=6, seed=2)
    assert sum(done.values()) == 6, done
    ref, got = (json.loads((d / "model" / "poft_summary.json").read_text()) for d in (tmp_path / "ref", out))
    assert got["steps"] == ref["steps"] == 40 and got["resumed_from"]
    assert got["train_loss"] == pytest.approx(ref["train_loss"], abs=1e-6)
    ref_w, got_w = (_tensors(d / "model" / "adapter_model.safetensors") for d in (tmp_path / "ref", out))
    assert max(float((ref_w[k] - got_w[k]).abs().max()) for k in ref_w) < 1e-6


ACTIVE_WORDS = {"sport": "ball goal team match", "code": "python function bug compile", "food": "bread soup salt"}


@pytest.mark.slow
def test_active_run_resumed_after_kills_equals_uninterrupted(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": f"{w} example {i}", "label": label}) + "\n"
                            for i in range(40) for label, w in ACTIVE_WORDS.items()))
    common = ["active", "run", "--dataset", str(data), "--encoder", "tiny-bert", "--max-pool", "0", "--max-length",
              "16", "--strategy", "entropy", "--rounds", "16", "--query-size", "4", "--initial-size", "6", "--json"]
    env = _env(tmp_path, TUNELAB_CACHE=str(tmp_path / "cache"), TUNELAB_QUIET="1")
    _run([*common, "--out", str(tmp_path / "ref")], env, tmp_path / "ref.log")
    state = tmp_path / "run" / "run.json"
    rng = random.Random(3)
    kills = 0
    for _ in range(5):  # each kill after one more finished round, at a random moment of the next
        before = len(json.loads(state.read_text())["rounds"]) if state.is_file() else 0
        proc = _start([*common, "--out", str(state.parent)], env, tmp_path / "run.log")
        if _wait_until(proc, lambda: state.is_file() and len(json.loads(state.read_text())["rounds"]) > before):
            time.sleep(rng.uniform(0.0, 0.05))
        kills += _kill(proc)
        json.loads(state.read_text())  # the state file is always whole
    assert kills >= 3
    _run([*common, "--out", str(state.parent)], env, tmp_path / "run.log")
    timing = ("query_s", "train_s")
    ref, got = (json.loads(p.read_text()) for p in (tmp_path / "ref" / "run.json", state))
    assert ([{k: v for k, v in r.items() if k not in timing} for r in got["rounds"]]
            == [{k: v for k, v in r.items() if k not in timing} for r in ref["rounds"]])


def _kill_while_staging(argv: list[str], out: Path, env: dict[str, str], log: Path) -> None:
    """Kill a run while it moves its results into `out` (staged beside it), then rerun it to completion: the
    killed run leaves no `out`, and the next run leaves no staging folder behind."""
    from tunelab.io import STAGED_PAUSE_ENV

    staged = lambda: any(".staged-" in p.name for p in out.parent.iterdir())  # noqa: E731
    proc = _start(argv, {**env, STAGED_PAUSE_ENV: "120"}, log)  # the run sleeps once its output is staged
    assert _wait_until(proc, staged, timeout=600), "the run ended before writing its output"
    assert _kill(proc)
    assert staged()  # a kill runs no cleanup ...
    assert not out.exists() or not any(out.iterdir()), "a killed run left a half-written --out"
    _run(argv, env, log)
    assert not staged()  # ... the next run into the same --out removes it


@pytest.mark.slow
def test_adapters_train_killed_while_saving_leaves_no_half_written_out(tmp_path):
    data = tmp_path / "tiny.csv"
    data.write_text("text,label\n" + "".join(f"{['socket', 'string'][i % 2]} routine {i},{['net', 'text'][i % 2]}\n"
                                               for i in range(48)))
    out = tmp_path / "run"
    argv = ["adapters", "train", "--adapter", "bora", "--data", str(data), "--encoder", "tiny-bert", "--r", "2",
            "--epochs", "1", "--batch-size", "8", "--max-length", "16", "--max-train", "32", "--max-test", "16",
            "--out", str(out), "--json"]
    _kill_while_staging(argv, out, _env(tmp_path, TUNELAB_CACHE=str(tmp_path / "cache")), tmp_path / "log")
    assert (out / "metrics.json").is_file() and (out / "adapter" / "adapter_config.json").is_file()


@pytest.mark.slow
def test_cortex_fit_killed_while_saving_leaves_no_half_written_out(tmp_path):
    env, log = _env(tmp_path, TUNELAB_CACHE=str(tmp_path / "cache")), tmp_path / "log"
    sim = tmp_path / "sim"
    _run(["cortex", "simulate", "--out", str(sim), "--n-images", "96", "--height", "10", "--width", "10"], env, log)
    out = tmp_path / "model"
    argv = ["cortex", "fit", "--data", str(sim / "recording.npz"), "--out", str(out), "--epochs", "2", "--json"]
    _kill_while_staging(argv, out, env, log)
    assert (out / "fit.json").is_file()


# ------------------------------------------------------------------------------------------------ sql index
def _wide_sqlite(path: Path, columns: int = 40, rows: int = 5000) -> int:
    """A table of `columns` text columns with `rows` distinct values each; returns the number of values."""
    names = [f"c{j}" for j in range(columns)]
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE wide ({', '.join(n + ' TEXT' for n in names)})")
        conn.executemany(f"INSERT INTO wide VALUES ({', '.join('?' * columns)})",
                         ([f"value {j} number {i}" for j in range(columns)] for i in range(rows)))
    return columns * rows


def test_sql_index_killed_mid_build_leaves_no_temp_and_rebuilds(tmp_path):
    expected = _wide_sqlite(tmp_path / "db.sqlite")
    index_dir = tmp_path / "index"
    argv = ["sql", "index", "--db", str(tmp_path / "db.sqlite"), "--index-dir", str(index_dir), "--json"]
    env, log = _env(tmp_path), tmp_path / "index.log"
    rng = random.Random(1)
    killed = 0
    for _ in range(3):
        proc = _start(argv, env, log)
        if _wait_until(proc, lambda: any(p.name.endswith(".tmp") for p in index_dir.glob(".*"))):
            time.sleep(rng.uniform(0.0, 0.2))
        killed += _kill(proc)
    assert killed >= 1, "the build finished before any kill: make the database bigger"
    assert any(".tmp" in p.name for p in index_dir.iterdir())  # what the kills left
    _run(argv, env, log)
    assert [p.name for p in index_dir.iterdir() if ".tmp" in p.name] == []
    [index] = index_dir.glob("*.t2s-index.sqlite")
    with sqlite3.connect(index) as conn:
        assert conn.execute("SELECT count(*) FROM value_fts").fetchone()[0] == expected


def test_stale_temps_of_live_processes_are_kept(tmp_path):
    from tunelab.io import remove_stale_pid_temps

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    names = {f".x.sqlite.{dead.pid}.tmp", f".x.sqlite.{dead.pid}.tmp-journal", f".x.sqlite.{os.getppid()}.tmp",
             ".y.sqlite.1.tmp", "x.sqlite"}
    for name in names:
        (tmp_path / name).write_text("")
    (tmp_path / f".x.sqlite.{dead.pid}.staged-ab_c1.tmp").mkdir()  # a staged folder of a dead writer
    removed = remove_stale_pid_temps(tmp_path, ".x.sqlite")
    assert sorted(p.name for p in removed) == sorted([f".x.sqlite.{dead.pid}.tmp", f".x.sqlite.{dead.pid}.tmp-journal",
                                                       f".x.sqlite.{dead.pid}.staged-ab_c1.tmp"])
    assert {p.name for p in tmp_path.iterdir()} == names - {f".x.sqlite.{dead.pid}.tmp",
                                                             f".x.sqlite.{dead.pid}.tmp-journal"}


# ------------------------------------------------------------------------------------------------ damaged caches
def test_truncated_corpus_cache_is_named_and_rebuilt(tmp_path, monkeypatch, capsys):
    from tunelab.data import corpora

    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path))
    built = []

    def build():
        built.append(1)
        return ["a text", "b text"], ["a", "b"]

    assert corpora._cached_corpus("toy", "stamp-1", build) == (["a text", "b text"], ["a", "b"])
    assert corpora._cached_corpus("toy", "stamp-1", build) == (["a text", "b text"], ["a", "b"])
    assert len(built) == 1  # the second call read the cache
    path = tmp_path / "data" / "toy.json"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a copy cut short
    capsys.readouterr()
    assert corpora._cached_corpus("toy", "stamp-1", build) == (["a text", "b text"], ["a", "b"])
    assert len(built) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "rebuilding" in err[0]
    assert json.loads(path.read_text())["texts"] == ["a text", "b text"]  # the rebuilt cache is whole again


def _smollm2_tokenizer_available():
    from tunelab.models.registry import SMOLLM2, cache_dir

    try:
        from tunelab.models.registry import gguf_location

        gguf_location(SMOLLM2.name)
    except Exception:
        pytest.skip("the SmolLM2 model is not installed here")
    return SMOLLM2, cache_dir


@pytest.mark.parametrize("damage", ["cut tokenizer.json", "cut config"])
def test_truncated_tokenizer_in_our_cache_is_rebuilt(tmp_path, monkeypatch, capsys, damage):
    from tunelab.models import load_tokenizer

    smollm2, cache_dir = _smollm2_tokenizer_available()
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path))
    reference = load_tokenizer(smollm2.name)  # builds the cached copy under tmp_path
    saved = cache_dir() / f"{smollm2.name}-tokenizer"
    assert saved.is_relative_to(tmp_path)
    name = "tokenizer.json" if damage == "cut tokenizer.json" else "tokenizer_config.json"
    data = (saved / name).read_bytes()
    (saved / name).write_bytes(data[: len(data) // 2])
    (saved.parent / f"{saved.name}.999999999.tmp").mkdir()  # a killed build's temp folder (no such pid)
    capsys.readouterr()
    rebuilt = load_tokenizer(smollm2.name)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(saved / name) in err[0] and "rebuilding" in err[0]
    text = "Hello there, how are you?"
    assert rebuilt(text)["input_ids"] == reference(text)["input_ids"]
    assert json.loads((saved / name).read_bytes())  # whole again
    assert not (saved.parent / f"{saved.name}.999999999.tmp").exists()


def test_damaged_installed_model_folder_still_fails_with_one_line(tmp_path):
    from tunelab.errors import UserError
    from tunelab.models.loaders import _repair_hint
    from tunelab.validate import check_json_files

    folder = tmp_path / "site-packages" / "model"
    folder.mkdir(parents=True)
    (folder / "tokenizer.json").write_text('{"version": ')
    with pytest.raises(UserError, match="tokenizer.json.*reinstall the model"):
        check_json_files(folder, _repair_hint("all-minilm-l6-v2", folder))


# ------------------------------------------------------------------------------------------------ Trainer resume
class _Regression:
    """A linear regression Trainer can train in milliseconds (loss returned by forward)."""

    @staticmethod
    def model():
        import torch

        class Model(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = torch.nn.Linear(2, 1)

            def forward(self, x, y):
                return {"loss": torch.nn.functional.mse_loss(self.linear(x).squeeze(-1), y)}

        torch.manual_seed(0)
        return Model()

    @staticmethod
    def data():
        import torch

        x = torch.arange(12, dtype=torch.float32).reshape(6, 2) / 10
        return [{"x": row, "y": row.sum()} for row in x]


@pytest.mark.parametrize("max_steps", [4, 6])  # 3 steps per epoch: the last save mid-epoch, and at an epoch's end
def test_resume_from_the_last_checkpoint_trains_no_further(tmp_path, max_steps):
    import torch
    from transformers import Trainer, TrainingArguments

    from tunelab.checkpointing import AtomicCheckpoints

    class AtomicTrainer(AtomicCheckpoints, Trainer):
        pass

    def trainer():
        args = TrainingArguments(output_dir=str(tmp_path), max_steps=max_steps, per_device_train_batch_size=2,
                                 save_steps=2, logging_steps=1, report_to=[], use_cpu=True, disable_tqdm=True,
                                 learning_rate=0.1, seed=0)
        return AtomicTrainer(model=_Regression.model(), args=args, train_dataset=_Regression.data())

    torch.set_num_threads(1)
    first = trainer()
    first.train()
    trained = {k: v.clone() for k, v in first.model.state_dict().items()}
    again = trainer()
    again.train(resume_from_checkpoint=str(tmp_path / f"checkpoint-{max_steps}"))
    assert again.state.global_step == max_steps
    assert all(torch.equal(trained[k], v) for k, v in again.model.state_dict().items())
