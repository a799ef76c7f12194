"""EPA with ns=1, nw=0 vs TRL's DPO sigmoid loss on random batches: results/loss_equality.json + README.

Each batch: a random tiny Llama policy and a different random reference, random preference texts; TRL's
DPOTrainer.compute_loss on its own tokenisation and collation, ours on ours.
"""

from __future__ import annotations

import argparse
import random

from benchmarks.align.readme import RESULTS, write_readme

WORDS = "apple river stone quiet bright seven window paper green slow music north cloud table".split()


def random_text(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from tunelab.align.preference.config import AlignConfig
    from tunelab.align.logprobs import sequence_logps
    from tunelab.align.preference.losses import dpo_loss, epa_loss
    from tunelab.align.preference.trainer import _collate, prepare_groups
    from tunelab.io import atomic_write_json
    from tunelab.models import tiny_llama
    from tunelab.progress import track

    torch.set_num_threads(2)
    rng = random.Random(0)
    diffs = {"dpo (ours) vs TRL": [], "epa ns=1 nw=0 w=1 vs TRL": [], "epa ns=1 nw=0 w=1e-6 vs TRL": []}
    values = []
    for b in track(range(args.batches), "loss batches"):
        policy, tok = tiny_llama(seed=1000 + b)
        reference, _ = tiny_llama(seed=b)
        records = [{"prompt": [{"role": "user", "content": random_text(rng, 3, 12)}],
                    "chosen": [{"role": "assistant", "content": random_text(rng, 1, 20)}],
                    "rejected": [{"role": "assistant", "content": random_text(rng, 1, 20)}]}
                   for _ in range(args.batch_size)]
        beta = rng.choice([0.05, 0.1, 0.5, 1.0])
        trl = DPOTrainer(model=policy, ref_model=reference, processing_class=tok, train_dataset=Dataset.from_list(records),
                         args=DPOConfig(output_dir="/tmp/tunelab-bench-loss", report_to="none", use_cpu=True, beta=beta,
                                        max_length=None, disable_tqdm=True))
        batch = trl.data_collator([trl.train_dataset[i] for i in range(args.batch_size)])
        with torch.no_grad():
            trl_loss = float(trl.compute_loss(trl.model, batch))
            ours = _collate(prepare_groups(records, tok, AlignConfig(output_dir="/tmp/x", method="dpo")), tok.pad_token_id)
            keys = ("input_ids", "attention_mask", "completion_mask")
            lp = sequence_logps(policy, *(ours[k] for k in keys)).view(-1, 2).double()
            rl = sequence_logps(reference, *(ours[k] for k in keys)).view(-1, 2).double()
        d = float(dpo_loss(lp[:, 0], lp[:, 1], rl[:, 0], rl[:, 1], beta).mean())
        e1 = float(epa_loss(lp[:, 0], rl[:, 0], lp[:, 1:], rl[:, 1:], beta=beta, w=1.0).mean())
        e0 = float(epa_loss(lp[:, 0], rl[:, 0], lp[:, 1:], rl[:, 1:], beta=beta, w=1e-6).mean())
        diffs["dpo (ours) vs TRL"].append(abs(d - trl_loss))
        diffs["epa ns=1 nw=0 w=1 vs TRL"].append(abs(e1 - trl_loss))
        diffs["epa ns=1 nw=0 w=1e-6 vs TRL"].append(abs(e0 - trl_loss))
        values.append({"beta": beta, "trl": trl_loss, "dpo": d, "epa_w1": e1, "epa_w1e-6": e0})
    result = {"batches": args.batches, "batch_size": args.batch_size,
              "max_abs_difference": {k: max(v) for k, v in diffs.items()}, "per_batch": values,
              "note": "In L = log(w + sum exp(r- - r+)) the DPO case is w = 1 (the positive's own term); "
                      "w -> 0 gives the unbounded linear loss r- - r+, hence the large last difference."}
    atomic_write_json(RESULTS / "loss_equality.json", result)
    for k, v in result["max_abs_difference"].items():
        print(f"{k}: max |diff| = {v:.3g}")
    write_readme()


if __name__ == "__main__":
    main()
