"""The controlled-reward study: DPO vs EPA on a real LM (LoRA) where the true reward is known.

1. Responses are sampled from the reference model (default SmolLM2-135M-Instruct) for a fixed prompt set.
2. True reward r*(y) (documented, programmatic): how much more the response reads like joy than like
   gloom to the embedded MiniLM sentence encoder,
       r*(y) = scale * (cos(e(y), e(JOY)) - cos(e(y), e(GLOOM))),
   a continuous score independent of the policy being trained.
3. Per prompt, `train_responses` responses are ranked by Plackett-Luce with utilities r* (Bradley-Terry
   for every pair); chosen = the top, rejected = the rest in order (DPO uses the first; EPA ns of them
   plus nw weak negatives from other prompts). `rankings_per_prompt` such records per prompt.
4. DPO and EPA are trained with the same steps, batch, learning rate and seeds.
5. Measures: on the held-out responses (never trained on), Pearson r and slope of implicit reward on
   r* (both centred per prompt); sampled generations: mean r*, KL to the reference (Monte-Carlo
   sum of log pi_theta - log pi_ref over the sampled tokens) and the win rate over reference samples under r*.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import torch

from tunelab.align.chat import pad_id_of, tokenize_prompt_response
from tunelab.align.logprobs import response_logps
from tunelab.align.preference.theory import slope_and_pearson
from tunelab.stats import summarise


def over_seeds(values) -> dict:
    """{"mean", "sd" (ddof 1), "ci95", "n"} of one measure over seeds."""
    s = summarise(values)
    return {k: s[k] for k in ("mean", "sd", "ci95", "n")}

JOY = "I am so happy, this is wonderful, delightful and exciting!"
GLOOM = "I am so sad, this is terrible, gloomy and boring."

PROMPTS = [
    "Describe your morning in one sentence.",
    "Write one sentence about the rain.",
    "Tell me about your weekend.",
    "What do you think of Mondays?",
    "Describe a trip to the dentist.",
    "Write a sentence about winter.",
    "How was the train ride?",
    "Describe an old house.",
    "What is it like to wait in a queue?",
    "Tell me about a football match.",
    "Describe the ocean.",
    "Write a sentence about homework.",
    "How does a long meeting feel?",
    "Describe a city at night.",
    "What happened at the market today?",
    "Write a line about a birthday.",
]


SYSTEM = "Answer in one short sentence."  # replaces the long default system prompt: shorter sequences


def chat_prompt(text: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]


@dataclasses.dataclass
class StudyConfig:
    model: str = "smollm2-135m-instruct"
    prompts: int = 8
    train_responses: int = 3
    heldout_responses: int = 3
    rankings_per_prompt: int = 2
    max_new_tokens: int = 12
    temperature: float = 1.0
    reward_scale: float = 10.0
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = ("dpo", "epa")
    beta: float = 0.1
    num_strong: int = 1
    num_weak: int = 1
    w: float = 1.0
    steps: int = 8
    batch_size: int = 2
    learning_rate: float = 2e-3
    lora_r: int = 8
    eval_samples: int = 2  # generations per prompt for reward / KL / win rate
    data_seed: int = 0


def true_reward(texts: list[str], encoder, scale: float) -> np.ndarray:
    emb = encoder.encode(list(texts) + [JOY, GLOOM], normalize_embeddings=True, convert_to_numpy=True)
    return scale * (emb[:-2] @ emb[-2] - emb[:-2] @ emb[-1])


@torch.no_grad()
def sample_responses(model, tokenizer, prompts: list[str], n: int, max_new_tokens: int, temperature: float,
                     seed: int, batch_size: int = 32) -> list[list[str]]:
    """n sampled responses per prompt (chat template, left padding); empty ones are resampled once, then kept as '...'."""
    torch.manual_seed(seed)
    model.eval()
    pad_id = pad_id_of(tokenizer)
    flat = [p for p in prompts for _ in range(n)]
    texts: list[str] = []
    for start in range(0, len(flat), batch_size):
        chunk = flat[start : start + batch_size]
        ids = [tokenize_prompt_response(tokenizer, p, "x")[0] for p in chunk]
        width = max(map(len, ids))
        input_ids = torch.tensor([[pad_id] * (width - len(i)) + i for i in ids])
        attention = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
        out = model.generate(input_ids=input_ids, attention_mask=attention, do_sample=True, temperature=temperature,
                             top_k=0, top_p=1.0, max_new_tokens=max_new_tokens, min_new_tokens=2, pad_token_id=pad_id)
        texts += [tokenizer.decode(row[width:], skip_special_tokens=True).strip() or "..." for row in out]
    return [texts[i * n : (i + 1) * n] for i in range(len(prompts))]


def plackett_luce_records(prompts, responses, rewards, rankings: int, rng: np.random.Generator) -> list[dict]:
    """Rank each prompt's responses by Plackett-Luce(exp r*) `rankings` times: chosen = top, rejected = the rest."""
    records = []
    for prompt, resp, r in zip(prompts, responses, rewards):
        for _ in range(rankings):
            gumbel = r + rng.gumbel(size=len(r))  # Gumbel-max = Plackett-Luce order; pairwise Bradley-Terry
            order = np.argsort(-gumbel)
            records.append({"prompt": prompt, "chosen": resp[order[0]], "rejected": [resp[i] for i in order[1:]]})
    return records


def centred_by_prompt(values: np.ndarray) -> np.ndarray:
    return values - values.mean(-1, keepdims=True)


def train_one(cfg: StudyConfig, method: str, seed: int, records: list[dict], out_dir, progress=None):
    from tunelab.align.preference.config import AlignConfig
    from tunelab.align.preference.trainer import PreferenceTrainer
    from tunelab.models.lora import load_for_training, lora_config

    model, tok = load_for_training(cfg.model, seed=seed)
    args = AlignConfig(output_dir=str(out_dir), method=method, beta=cfg.beta, num_strong=cfg.num_strong,
                       num_weak=cfg.num_weak if method == "epa" else 0, w=cfg.w, max_steps=cfg.steps,
                       per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
                       lr_scheduler_type="constant", logging_steps=max(1, cfg.steps // 4), save_strategy="no",
                       seed=seed, data_seed=seed, use_cpu=True, disable_tqdm=True, max_length=256)
    lora = lora_config(cfg.lora_r, alpha=2 * cfg.lora_r, targets=["q_proj", "k_proj", "v_proj", "o_proj"])
    trainer = PreferenceTrainer(model, args, records, tok, peft_config=lora)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # keep stdout clean (--json); the study shows its own progress
    start = time.perf_counter()
    trainer.train()
    return trainer.model, tok, time.perf_counter() - start, trainer.state.log_history


def evaluate_policy(policy, tok, cfg: StudyConfig, prompts, heldout, heldout_reward, ref_samples_reward, encoder, seed):
    pairs = [(p, r) for p, rs in zip(prompts, heldout) for r in rs]
    policy_lp = response_logps(policy, tok, pairs)
    ref_lp = response_logps(policy, tok, pairs, reference=True)
    implicit = (cfg.beta * (policy_lp - ref_lp)).numpy().reshape(len(prompts), -1)
    slope, pearson = slope_and_pearson(centred_by_prompt(implicit), centred_by_prompt(heldout_reward))
    gens = sample_responses(policy, tok, prompts, cfg.eval_samples, cfg.max_new_tokens, 1.0, seed=10_000 + seed)
    gen_pairs = [(p, g) for p, gs in zip(prompts, gens) for g in gs]
    kl = float((response_logps(policy, tok, gen_pairs) - response_logps(policy, tok, gen_pairs, reference=True)).mean())
    gen_reward = true_reward([g for _, g in gen_pairs], encoder, cfg.reward_scale).reshape(len(prompts), -1)
    wins = (gen_reward[:, :, None] > ref_samples_reward[:, None, :]).mean()
    ties = (gen_reward[:, :, None] == ref_samples_reward[:, None, :]).mean()
    return {"pearson": pearson, "slope": slope, "kl": kl, "reward": float(gen_reward.mean()),
            "win_rate": float(wins + 0.5 * ties), "example": gen_pairs[0][1]}


def run_study(cfg: StudyConfig | None = None, out_dir=None, progress=None) -> dict:
    """Train every (method, seed); returns per-run measures and per-method mean +/- sd (ddof 1, tunelab.stats)."""
    import tempfile

    from tunelab.models import load_causal_lm, load_sentence_encoder

    cfg = cfg or StudyConfig()
    prompts = [chat_prompt(p) for p in PROMPTS[: cfg.prompts]]
    encoder = load_sentence_encoder("all-minilm-l6-v2")
    ref_model, tok = load_causal_lm(cfg.model)
    n = cfg.train_responses + cfg.heldout_responses
    responses = sample_responses(ref_model, tok, prompts, n, cfg.max_new_tokens, cfg.temperature, seed=cfg.data_seed)
    rewards = true_reward([r for rs in responses for r in rs], encoder, cfg.reward_scale).reshape(len(prompts), n)
    train, heldout = [rs[: cfg.train_responses] for rs in responses], [rs[cfg.train_responses :] for rs in responses]
    records = plackett_luce_records(prompts, train, rewards[:, : cfg.train_responses], cfg.rankings_per_prompt,
                                    np.random.default_rng(cfg.data_seed))
    heldout_reward = rewards[:, cfg.train_responses :]
    del ref_model
    runs = []
    jobs = [(m, s) for s in cfg.seeds for m in cfg.methods]
    if progress is not None:
        jobs = progress(jobs)
    with tempfile.TemporaryDirectory() as tmp:
        for method, seed in jobs:
            policy, tok, seconds, logs = train_one(cfg, method, seed, records, out_dir or tmp)
            measures = evaluate_policy(policy, tok, cfg, prompts, heldout, heldout_reward, heldout_reward, encoder, seed)
            final = [h for h in logs if "loss" in h][-1]
            runs.append({"method": method, "seed": seed, "train_seconds": seconds, "final_loss": final["loss"],
                         "final_reward_accuracy": final.get("rewards/accuracies"), **measures})
    summary = {}
    for method in cfg.methods:
        rows = [r for r in runs if r["method"] == method]
        summary[method] = {k: over_seeds([r[k] for r in rows]) for k in ("pearson", "slope", "kl", "reward", "win_rate")}
    means = {m: summary[m]["pearson"]["mean"] for m in cfg.methods}
    return {"config": dataclasses.asdict(cfg), "reward_std": float(rewards.std()),
            "reference_reward": float(heldout_reward.mean()), "runs": runs, "summary": summary,
            "higher_pearson": max(means, key=means.get), "records": len(records)}


def study_figure(outcome: dict):
    """Left: r(implicit, true) per method and seed; right: true reward of generations vs KL to the reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.2))
    methods = outcome["config"]["methods"]
    for i, method in enumerate(methods):
        rows = [r for r in outcome["runs"] if r["method"] == method]
        ax1.scatter([i] * len(rows), [r["pearson"] for r in rows], label=method)
        ax2.scatter([r["kl"] for r in rows], [r["reward"] for r in rows], label=method)
    ax1.set_xticks(range(len(methods)), methods)
    ax1.set_ylabel("Pearson r (implicit, true) on held-out")
    ax2.scatter([0], [outcome["reference_reward"]], marker="x", color="k", label="reference")
    ax2.set_xlabel("KL(policy || reference), nats")
    ax2.set_ylabel("mean true reward of samples")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig
