"""Training-step time and memory of LoRA / DoRA / BoRA on one causal LM, and merged inference against the base.

All methods get the same base weights, the same batch, the same optimizer, and are timed in one process with
their steps interleaved (A, B, C, A, B, C, ...) so that load on a shared machine hits each method alike; the ratios
against DoRA and LoRA are taken from these medians. Peak memory of a step is the peak of live bytes allocated by
torch ops during one step (forward, backward, optimizer step), read from the profiler's memory events
(`profile_memory=True`), over the bytes live at the start of the step: the process' RSS would mostly show the
allocator's caching, not the method.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass, field

import torch
from torch.profiler import ProfilerActivity, profile

from tunelab.adapters.attach import attach, make_config
from tunelab.adapters.cost import StepCost, count_step_cost
from tunelab.progress import progress_bar

LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class StepResult:
    step_seconds: list[float] = field(default_factory=list)
    peak_step_bytes: int = 0
    saved_activation_bytes: int = 0
    trainable_parameters: int = 0
    cost: StepCost = field(default_factory=StepCost)

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.step_seconds)


def lm_batch(tokenizer, texts: list[str], batch_size: int, seq_len: int) -> dict[str, torch.Tensor]:
    """A fixed causal-LM batch (labels = inputs, padding ignored)."""
    enc = tokenizer(texts[:batch_size], return_tensors="pt", padding="max_length", truncation=True,
                    max_length=seq_len)
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}


def train_step(model, batch: dict, optimizer: torch.optim.Optimizer) -> float:
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def _forward_backward(model, batch: dict) -> None:
    model(**batch).loss.backward()
    model.zero_grad(set_to_none=True)


def round_ratios(results: dict, method: str, peer: str) -> list[float]:
    """Per-round time ratios: step i of `method` over step i of `peer`, both from the same interleaved round,
    so the two steps ran seconds apart under nearly the same load."""
    return [a / b for a, b in zip(results[method].step_seconds, results[peer].step_seconds)]


def median_and_iqr(values: list[float]) -> dict:
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return {"median": median, "q1": q1, "q3": q3}


def peak_step_bytes(model, batch: dict, optimizer: torch.optim.Optimizer) -> int:
    """Peak of live op-allocated bytes during one step, relative to its start (profiler memory events)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        train_step(model, batch, optimizer)
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.cpu_memory_usage if event.name == "[memory]" else event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def saved_activation_bytes(model, batch: dict) -> int:
    """Bytes autograd keeps for the backward pass of one forward (each storage counted once, parameters
    excluded): the part of a step's memory that the adapter kind changes. Deterministic and cheap."""
    param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in param_storages:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(**batch).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


def build_adapted(base, methods: list[str], r: int, targets: list[str], order: str = "out_first") -> dict:
    """One deep copy of `base` per method, each with its adapter attached and trainable."""
    models = {}
    for method in methods:
        adapter, _, method_order = method.partition(":")
        config = make_config(adapter, r=r, target_modules=targets, order=method_order or order)
        models[method] = attach(copy.deepcopy(base), config).train()
    return models


def measure_training(models: dict, batch: dict, repeats: int, warmup: int = 1, lr: float = 1e-4,
                     profile_memory: bool = True) -> dict:
    """Interleaved step timings and per-method memory (saved activations; profiled step peak unless
    `profile_memory` is False, the profiler being slow on a loaded machine); same batch for all."""
    optimizers = {m: torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
                  for m, model in models.items()}
    results = {m: StepResult(trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad))
               for m, model in models.items()}
    names = list(models)
    with progress_bar() as bar:
        task = bar.add_task("training steps", total=(warmup + repeats + 2 + profile_memory) * len(names))
        for m in names:
            results[m].saved_activation_bytes = saved_activation_bytes(models[m], batch)
            bar.advance(task)
            # counted on a gradient step without the optimizer update, so the weights stay the same for all
            results[m].cost = count_step_cost(lambda: _forward_backward(models[m], batch))
            bar.advance(task)
        for _ in range(warmup):  # also creates AdamW's state, so the measured steps are steady-state
            for m in names:
                train_step(models[m], batch, optimizers[m])
                bar.advance(task)
        for rep in range(repeats):
            for m in names[rep % len(names):] + names[:rep % len(names)]:  # rotate who goes first
                start = time.perf_counter()
                train_step(models[m], batch, optimizers[m])
                results[m].step_seconds.append(time.perf_counter() - start)
                bar.advance(task)
        for m in names if profile_memory else []:
            results[m].peak_step_bytes = peak_step_bytes(models[m], batch, optimizers[m])
            bar.advance(task)
    return results


@torch.no_grad()
def measure_inference(models: dict, batch: dict, repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Interleaved forward timings (no labels) of already merged / plain models."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    times = {m: [] for m in models}
    names = list(models)
    for model in models.values():
        model.eval()
    for _ in range(warmup):
        for m in names:
            models[m](**inputs)
    for rep in range(repeats):
        for m in names[rep % len(names):] + names[:rep % len(names)]:
            start = time.perf_counter()
            models[m](**inputs)
            times[m].append(time.perf_counter() - start)
    return times


def _bench_texts(n: int) -> list[str]:
    """Real prose for the batch: Python standard-library docstrings (offline corpus)."""
    from tunelab.data import load_labeled_text

    texts = sorted(load_labeled_text("stdlib-docs").texts, key=len, reverse=True)
    return texts[:n]


def run_speed_study(model_name: str, methods: list[str], r: int = 16, batch_size: int = 2, seq_len: int = 64,
                    repeats: int = 5, inference_repeats: int | None = None, profile_memory: bool = True) -> dict:
    """Training-step time and peak memory per method (ratios against DoRA and LoRA from this one run), then
    forward time of the merged BoRA model against the unadapted base model."""
    from tunelab.models import load_causal_lm

    base, tokenizer = load_causal_lm(model_name)
    batch = lm_batch(tokenizer, _bench_texts(batch_size), batch_size, seq_len)
    models = build_adapted(base, methods, r, LLAMA_TARGETS)
    results = measure_training(models, batch, repeats=repeats, profile_memory=profile_memory)

    def ratio(method: str, peer: str, attr: str) -> float | None:
        if peer not in results or not getattr(results[peer], attr):
            return None
        return getattr(results[method], attr) / getattr(results[peer], attr)

    def spread(method: str, peer: str) -> dict | None:
        return median_and_iqr(round_ratios(results, method, peer)) if peer in results else None

    def cost_ratio(method: str, peer: str, attr: str) -> float | None:
        return getattr(results[method].cost, attr) / getattr(results[peer].cost, attr) if peer in results else None

    training = {
        m: {"median_step_s": res.median_seconds, "step_s": res.step_seconds,
            "round_ratio_vs_dora": spread(m, "dora"), "round_ratio_vs_lora": spread(m, "lora"),
            "matmul_gflops": res.cost.matmul_flops / 1e9, "aten_ops": res.cost.aten_ops,
            "elements_written_m": res.cost.elements_written / 1e6,
            "flops_vs_dora": cost_ratio(m, "dora", "matmul_flops"),
            "flops_vs_lora": cost_ratio(m, "lora", "matmul_flops"),
            "ops_vs_dora": cost_ratio(m, "dora", "aten_ops"), "ops_vs_lora": cost_ratio(m, "lora", "aten_ops"),
            "elements_vs_dora": cost_ratio(m, "dora", "elements_written"),
            "elements_vs_lora": cost_ratio(m, "lora", "elements_written"),
            "peak_step_mb": res.peak_step_bytes / 2**20, "trainable_parameters": res.trainable_parameters,
            "time_vs_dora": ratio(m, "dora", "median_seconds"), "time_vs_lora": ratio(m, "lora", "median_seconds"),
            "memory_vs_dora": ratio(m, "dora", "peak_step_bytes"),
            "memory_vs_lora": ratio(m, "lora", "peak_step_bytes"),
            "saved_activation_mb": res.saved_activation_bytes / 2**20,
            "activations_vs_dora": ratio(m, "dora", "saved_activation_bytes"),
            "activations_vs_lora": ratio(m, "lora", "saved_activation_bytes")}
        for m, res in results.items()
    }
    # merged inference: the trained-for-a-few-steps BoRA adapter folded into the weights vs the plain base
    bora_name = next((m for m in methods if m.startswith("bora")), None)
    inference = {}
    if bora_name is not None:
        merged = models.pop(bora_name).merge_and_unload()
        models.clear()
        times = measure_inference({"base": base, "merged_bora": merged}, batch,
                                  repeats=inference_repeats or max(3 * repeats, 5))
        inference = {"base_s": times["base"], "merged_bora_s": times["merged_bora"],
                     "median_base_s": statistics.median(times["base"]),
                     "median_merged_s": statistics.median(times["merged_bora"]),
                     "merged_vs_base": statistics.median(times["merged_bora"]) / statistics.median(times["base"])}
    return {"model": model_name, "r": r, "batch_size": batch_size, "seq_len": seq_len, "repeats": repeats,
            "targets": LLAMA_TARGETS, "threads": torch.get_num_threads(), "training": training,
            "inference": inference,
            "memory_method": "peak live bytes allocated by torch ops during one step (profiler memory events)",
            "cost_method": "one forward+backward per method under FlopCounterMode (matmul FLOPs) and a dispatch "
                           "mode counting aten ops and the elements they return"}
