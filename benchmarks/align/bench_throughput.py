"""Throughput: our DPO / EPA trainer vs TRL's DPOTrainer, same model, LoRA, batch and lengths.

All trainers are built in one process; rounds alternate between them so CPU contention hits all alike.
Per-step wall times come from a callback; the ratio is per sequence (EPA's step carries 1+ns+nw
sequences per prompt). Peak memory: the highest process RSS sampled every 5 ms during a trainer's steps
minus the RSS when its round started (CPU run; approximate), and its ratio to TRL's, per step and per sequence.
All run in fp32: TRL's DPOConfig defaults to bf16 autocast, which is switched off so the precision is the same.
TRL's DPOConfig also defaults to gradient checkpointing (TrainingArguments, and so AlignConfig, do not): the
benchmark measures every trainer with it on and with it off, each setting the same for all trainers.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from benchmarks._harness import load_average
from benchmarks.align.readme import RESULTS, write_readme

from transformers import TrainerCallback  # noqa: E402


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kw):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.perf_counter() - self._start)


class PeakRSS:
    def __init__(self):
        import psutil

        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self):
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def increase_mib(self) -> float:
        return (self.peak - self.base) / 2**20


def records(n: int, response_words: int):
    words = "the quick brown fox jumps over a lazy dog while rain falls on quiet green hills".split()
    out = []
    for i in range(n):
        resp = lambda k: " ".join(words[(i + k + j) % len(words)] for j in range(response_words))  # noqa: E731
        out.append({"prompt": [{"role": "user", "content": f"Write a short line about item {i}."}],
                    "chosen": [{"role": "assistant", "content": resp(0)}],
                    "rejected": [{"role": "assistant", "content": resp(3)}]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="steps per round")
    parser.add_argument("--response-words", type=int, default=24)
    parser.add_argument("--nw", type=int, default=2, help="weak negatives of the EPA trainer")
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--checkpointing", choices=("both", "on", "off"), default="both",
                        help="gradient checkpointing for every trainer (TRL's DPOConfig default is on)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads; 1 is faster on a CPU shared with other jobs (no spinning workers)")
    args = parser.parse_args()
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    from tunelab.align.preference.config import AlignConfig
    from tunelab.align.preference.trainer import PreferenceTrainer
    from tunelab.io import atomic_savefig, atomic_write_json
    from tunelab.models import load_causal_lm

    torch.set_num_threads(args.threads)
    data = records(args.batch * args.steps, args.response_words)
    plain = [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in data]

    def lora():
        return LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.0, task_type="CAUSAL_LM",
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])

    def measure(checkpointing: bool) -> list[dict]:
        common = dict(per_device_train_batch_size=args.batch, max_steps=args.steps, learning_rate=1e-4,
                      lr_scheduler_type="constant", save_strategy="no", logging_steps=args.steps, use_cpu=True,
                      disable_tqdm=True, report_to="none", seed=0, gradient_checkpointing=checkpointing)
        trainers = {}
        model, tok = load_causal_lm(args.model)
        timer = StepTimer()
        trainers["TRL DPOTrainer"] = (DPOTrainer(model=model, processing_class=tok,
                                                 train_dataset=Dataset.from_list(plain), peft_config=lora(),
                                                 callbacks=[timer],
                                                 args=DPOConfig(output_dir="/tmp/tunelab-thr-trl", beta=0.1,
                                                                precompute_ref_log_probs=True, max_length=None,
                                                                bf16=False, **common)),
                                      timer, 2)
        for name, method, nw in (("tunelab DPO", "dpo", 0), (f"tunelab EPA (ns=1, nw={args.nw})", "epa", args.nw)):
            model, tok = load_causal_lm(args.model)
            timer = StepTimer()
            cfg = AlignConfig(output_dir=f"/tmp/tunelab-thr-{method}", method=method, num_weak=nw, beta=0.1,
                              max_length=1024, **common)
            trainers[name] = (PreferenceTrainer(model, cfg, plain, tok, peft_config=lora(), callbacks=[timer]),
                              timer, 2 + nw)
        peaks = {name: 0.0 for name in trainers}
        for _ in range(args.rounds):
            for name, (trainer, _, _) in trainers.items():
                with PeakRSS() as rss:
                    trainer.train()
                peaks[name] = max(peaks[name], rss.increase_mib)
        rows = []
        for name, (trainer, timer, group) in trainers.items():
            times = timer.times[1:]  # the very first step pays one-off costs
            median = statistics.median(times)
            rows.append({"name": name, "sequences_per_step": args.batch * group, "median_step_s": median,
                         "sequences_per_s": args.batch * group / median, "steps_timed": len(times),
                         "peak_rss_increase_mib": peaks[name]})
        trl = rows[0]
        for r in rows:
            r["ratio_vs_trl"] = r["sequences_per_s"] / trl["sequences_per_s"]
            r["peak_ratio_vs_trl"] = r["peak_rss_increase_mib"] / trl["peak_rss_increase_mib"]
            r["peak_per_sequence_ratio_vs_trl"] = (r["peak_ratio_vs_trl"] * trl["sequences_per_step"]
                                                   / r["sequences_per_step"])
        return rows

    settings = {"both": (True, False), "on": (True,), "off": (False,)}[args.checkpointing]
    runs = [{"gradient_checkpointing": gc, "trainers": measure(gc)} for gc in settings]
    result = {"model": args.model, "lora_r": args.lora_r, "batch_prompts": args.batch, "rounds": args.rounds,
              "steps_per_round": args.steps, "response_words": args.response_words, "threads": args.threads,
              "load_average_1min": load_average(), "runs": runs}
    atomic_write_json(RESULTS / "throughput.json", result)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 1.2 + 0.9 * len(runs)), sharey=True)
    names = [r["name"] for r in runs[0]["trainers"]]
    height = 0.8 / len(runs)
    for k, run in enumerate(runs):
        label = "checkpointing " + ("on" if run["gradient_checkpointing"] else "off")
        ys = [i + k * height for i in range(len(names))]
        axes[0].barh(ys, [r["ratio_vs_trl"] for r in run["trainers"]], height, label=label)
        axes[1].barh(ys, [r["peak_per_sequence_ratio_vs_trl"] for r in run["trainers"]], height, label=label)
    axes[0].set_yticks([i + height * (len(runs) - 1) / 2 for i in range(len(names))], names)
    axes[0].axvline(1.0, color="k", ls="--", lw=1)
    axes[0].set_xlabel("sequences per second, ratio to TRL (goal >= 1.0)")
    axes[1].axvline(1.2, color="k", ls="--", lw=1)
    axes[1].set_xlabel("peak memory per sequence, ratio to TRL (goal <= 1.2)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, RESULTS / "throughput.png")
    for run in runs:
        for r in run["trainers"]:
            print(f"checkpointing {run['gradient_checkpointing']}: {r['name']}: {r['sequences_per_s']:.2f} seq/s, "
                  f"ratio {r['ratio_vs_trl']:.3f}, peak +{r['peak_rss_increase_mib']:.0f} MiB "
                  f"({r['peak_ratio_vs_trl']:.2f}x TRL, {r['peak_per_sequence_ratio_vs_trl']:.2f}x per sequence)")
    write_readme()


if __name__ == "__main__":
    main()
