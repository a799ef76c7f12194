"""`tunelab demo` section for adapters: BoRA checked against its dense definition, then a small accuracy and
speed comparison with PEFT's LoRA and DoRA (small scale; the full studies are in benchmarks/adapters)."""

from __future__ import annotations

import copy
import statistics
from pathlib import Path

import torch

from tunelab.report import Section, Table


def _perturb(model, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                noise = torch.randn(param.shape, generator=gen) * 0.05
                param.mul_(1 + noise.abs()) if "magnitude" in name else param.add_(noise)


def correctness_rows() -> list[list]:
    """Identity at init, factorised forward vs dense reference, merge/unmerge, on a tiny Llama, both orders."""
    from tunelab.adapters.attach import attach, make_config
    from tunelab.adapters.bora import BidimLoraLinear
    from tunelab.adapters.reference import dense_bora_forward
    from tunelab.models import tiny_llama

    base, tokenizer = tiny_llama(seed=0)
    ids = tokenizer(["BoRA rescales both sides of the weight."], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        base_logits = base(ids).logits
    rows = []
    for order in ("out_first", "in_first"):
        model = attach(copy.deepcopy(base), make_config("bora", r=4, order=order,
                                                        target_modules=["q_proj", "v_proj", "up_proj", "down_proj"]))
        with torch.no_grad():
            identity = (model(ids).logits - base_logits).abs().max().item()
            _perturb(model, seed=1)
            worst = 0.0
            for layer in (m for m in model.modules() if isinstance(m, BidimLoraLinear)):
                h = torch.randn(4, layer.in_features)
                ref = dense_bora_forward(h, layer.get_base_layer().weight, layer.get_base_layer().bias,
                                         layer.lora_A["default"].weight, layer.lora_B["default"].weight,
                                         layer.scaling["default"], layer.lora_magnitude_out["default"],
                                         layer.lora_magnitude_in["default"], order)
                worst = max(worst, (layer(h) - ref).abs().max().item())
            adapted = model(ids).logits
            weights = {n: p.clone() for n, p in model.named_parameters() if "base_layer" in n}
            model.merge_adapter()
            merged_gap = (model(ids).logits - adapted).abs().max().item()
            model.unmerge_adapter()
            restore = max((p - weights[n]).abs().max().item() for n, p in model.named_parameters() if n in weights)
        rows.append([order, identity, worst, merged_gap, restore])
    return rows


def run(out_dir: Path, full: bool = False) -> list[Section]:
    """Demo scale: 128 training texts, one seed, 3 timed steps at batch 1 x 16; `full`: 384 texts, 3 seeds,
    7 timed steps at batch 4 x 64 (benchmarks/adapters has the studies)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tunelab.adapters.bench import run_speed_study
    from tunelab.adapters.classify import TrainSettings, make_inputs, train_classifier
    from tunelab.data import load_labeled_text
    from tunelab.models import load_encoder

    torch.set_num_threads(2)
    checks = correctness_rows()
    check_table = Table(["order", "max |y - y_base| at init", "max |fast - dense reference|",
                         "max |merged - unmerged| (logits)", "max weight error after unmerge"], checks,
                        caption="Tiny Llama, r=4 on q/v/up/down projections, adapter parameters perturbed.")

    # accuracy at demo scale: stdlib-docs, MiniLM, top 2 layers adapted, one seed
    train, test = load_labeled_text("stdlib-docs").train_test_split(0.2)
    n_train, seeds = (384, (0, 1, 2)) if full else (128, (0,))
    batch, seq_len, repeats = (4, 64, 7) if full else (1, 16, 3)
    train, test = train.sample(n_train, seed=0), test.sample(160, seed=0)
    encoder, tokenizer = load_encoder("all-minilm-l6-v2")
    accuracy_rows = []
    inputs = None
    for adapter in ("lora", "dora", "bora"):
        scores = []
        for seed in seeds:
            settings = TrainSettings(adapter=adapter, r=8, epochs=2, max_length=32, adapted_layers=2, seed=seed)
            if inputs is None:
                inputs = tuple(make_inputs(encoder, tokenizer, part.texts, settings, "encoding")
                               for part in (train, test))
            _, metrics = train_classifier(copy.deepcopy(encoder), tokenizer, train, test, settings,
                                          description=f"demo {adapter} seed {seed}", inputs=inputs)
            scores.append(metrics)
        accuracy_rows.append([adapter, statistics.mean(m["accuracy"] for m in scores),
                              statistics.mean(m["macro_f1"] for m in scores), scores[0]["trainable_parameters"]])

    speed = run_speed_study("smollm2-135m-instruct", ["lora", "dora", "bora"], r=8, batch_size=batch,
                            seq_len=seq_len, repeats=repeats, profile_memory=False)
    speed_rows = [[m, row["median_step_s"], row["time_vs_dora"], row["flops_vs_dora"], row["ops_vs_dora"],
                   row["saved_activation_mb"], row["activations_vs_dora"]] for m, row in speed["training"].items()]

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    axes[0].bar([r[0] for r in accuracy_rows], [r[1] for r in accuracy_rows], color=["C0", "C1", "C2"])
    axes[0].set_title(f"stdlib-docs test accuracy (mean of {len(seeds)} seed(s))", fontsize=9)
    axes[1].bar([r[0] for r in speed_rows], [r[2] for r in speed_rows], color=["C0", "C1", "C2"])
    axes[1].axhline(1.0, color="grey", lw=0.8)
    axes[1].set_title("SmolLM2-135M step time / DoRA's", fontsize=9)
    fig.tight_layout()

    section = Section(
        title="Adapters: BoRA vs PEFT's LoRA and DoRA",
        prose=(
            "BoRA (bi-dimensional weight-decomposed LoRA) adds a trainable magnitude per input column to DoRA's "
            "per-output magnitude; the adapted weight factorises as diag(g_out) (W0 + sBA) diag(g_in), which the "
            "layer uses directly (one base GEMM per step, no dense weight kept for backward). It is a variant of "
            "PEFT's LoRA (`BidimLoraConfig`), so get_peft_model, save/load, merge/unmerge and several adapters are "
            "PEFT's own code paths. The first table checks it against a literal dense implementation; the other "
            f"numbers are a demo-scale run: {n_train} stdlib-docs training texts, 2 epochs, {len(seeds)} seed(s), "
            f"and {repeats} timed steps per method on SmolLM2-135M (see benchmarks/adapters for the studies where "
            "every linear layer is adapted, more timed steps and the profiled memory). With few steps on a shared "
            "CPU the time ratios are rough; the FLOP and op counts are exact."),
        tables=[check_table,
                Table(["adapter", "accuracy", "macro-F1", "trainable parameters"], accuracy_rows,
                      caption=f"MiniLM-L6, adapters on the top 2 layers, r=8, {n_train} training texts, 160 test "
                              f"texts, 2 epochs, mean over seed(s) {', '.join(map(str, seeds))}."),
                Table(["adapter", "median step (s)", "time vs DoRA", "matmul FLOPs vs DoRA", "aten ops vs DoRA",
                       "saved activations (MiB)", "vs DoRA"], speed_rows,
                      caption=f"SmolLM2-135M, r=8, batch {batch} x {seq_len} tokens, {repeats} interleaved steps per "
                              "method; FLOPs and op counts "
                              "from one forward+backward each (independent of machine load).")],
        key_numbers={"max |fast - dense| (out_first)": checks[0][2],
                     "BoRA step / DoRA step": speed["training"]["bora"]["time_vs_dora"],
                     "BoRA aten ops / DoRA": speed["training"]["bora"]["ops_vs_dora"],
                     "merged BoRA inference / base": speed["inference"]["merged_vs_base"]},
        results={"correctness": checks, "accuracy": accuracy_rows, "speed": speed},
    )
    section.add_figure(fig, "adapters_demo.png", out_dir, caption="Demo-scale accuracy and step-time ratio.")
    plt.close(fig)
    return [section]
