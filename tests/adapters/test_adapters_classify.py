"""The classifier pieces: the top-layer cache is exact, and the parameter counts follow the formulas."""

import copy

import torch
from tunelab.adapters.classify import TopLayersClassifier, TrainSettings, build_model, encode_lower
from tunelab.models import tiny_bert


def test_top_layers_on_cached_states_equal_the_full_encoder():
    encoder, tokenizer = tiny_bert(seed=0, layers=3)
    texts = ["a short text", "another, somewhat longer text about sockets and servers", "x"]
    features = encode_lower(encoder, tokenizer, texts, adapted_layers=2, max_length=12)
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=12, return_tensors="pt")
    with torch.no_grad():
        full = encoder(**enc).last_hidden_state
        model = TopLayersClassifier(encoder, num_labels=2, adapted_layers=2)
        from transformers.masking_utils import create_bidirectional_mask

        h = features["hidden_states"]
        mask = create_bidirectional_mask(config=encoder.config, inputs_embeds=h,
                                         attention_mask=features["attention_mask"])
        for layer in model.layers:
            h = layer(h, attention_mask=mask)
    assert (h - full).abs().max().item() < 1e-5


def test_trainable_parameter_counts_match_formulas():
    encoder, _ = tiny_bert(seed=0, layers=2, hidden=32)
    counts = {}
    for adapter in ("lora", "dora", "bora"):
        model = build_model(copy.deepcopy(encoder), 3, TrainSettings(adapter=adapter, r=4, adapted_layers=1))
        counts[adapter] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # top layer: query/key/value/attention-output dense (32->32), intermediate (32->64), output (64->32)
    shapes = [(32, 32)] * 4 + [(32, 64), (64, 32)]
    head = 32 * 3 + 3
    assert counts["lora"] == head + sum(4 * (i + o) for i, o in shapes)
    assert counts["dora"] == counts["lora"] + sum(o for _, o in shapes)
    assert counts["bora"] == counts["lora"] + sum(i + o for i, o in shapes)


def test_full_fine_tuning_trains_every_weight_and_the_head_has_its_own_lr():
    from tunelab.adapters.classify import FULL, parameter_groups

    encoder, _ = tiny_bert(seed=0, layers=2, hidden=32)
    total = sum(p.numel() for p in encoder.parameters())
    model = build_model(copy.deepcopy(encoder), 3, TrainSettings(adapter=FULL))
    assert not any("lora_" in name for name, _ in model.named_parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    pooler = sum(p.numel() for n, p in encoder.named_parameters() if n.startswith("pooler."))
    assert trainable == total - pooler + 32 * 3 + 3  # mean pooling drops the pooler; the head is new
    body, head = parameter_groups(model, TrainSettings(adapter=FULL, lr=1e-4, head_lr=2e-3))
    assert (body["lr"], head["lr"]) == (1e-4, 2e-3)
    assert sum(p.numel() for p in head["params"]) == 32 * 3 + 3
    [single] = parameter_groups(model, TrainSettings(adapter=FULL, lr=1e-4))
    assert single["lr"] == 1e-4 and sum(p.numel() for p in single["params"]) == trainable
    lora = build_model(copy.deepcopy(encoder), 3, TrainSettings(adapter="lora", r=4))
    adapter_group, head_group = parameter_groups(lora, TrainSettings(adapter="lora", lr=1e-3, head_lr=5e-3))
    assert sum(p.numel() for p in head_group["params"]) == 32 * 3 + 3 and head_group["lr"] == 5e-3
