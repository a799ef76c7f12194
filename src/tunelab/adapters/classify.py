"""Text classification with an adapted encoder: mean-pooled encoder + linear head, adapter on the encoder.

A plain training loop (AdamW, fixed number of epochs) keeps the three adapters on exactly the same schedule;
the model is an ordinary nn.Module, so `transformers.Trainer` / accelerate can train it unchanged as well.

`adapted_layers=k` adapts only the top k encoder layers: the frozen lower layers give the same states at every
step, so they are computed once per text (`encode_lower`) and training runs the top k layers only. With k equal
to the number of layers this is ordinary full-encoder adaptation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch import nn

from tunelab.adapters.attach import attach, make_config
from tunelab.data import LabeledTextDataset
from tunelab.progress import progress_bar

# the attention and feed-forward projections of a BERT-style encoder
BERT_TARGETS = ["query", "key", "value", "dense"]


class TopLayersClassifier(nn.Module):
    """The top k layers of a BERT-style encoder on precomputed lower-layer states, mean pooling, linear head."""

    def __init__(self, encoder: nn.Module, num_labels: int, adapted_layers: int):
        super().__init__()
        self.config = encoder.config
        self.layers = nn.ModuleList(encoder.encoder.layer[-adapted_layers:])
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, hidden_states, attention_mask, labels=None):
        from transformers.masking_utils import create_bidirectional_mask

        mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden_states,
                                         attention_mask=attention_mask)
        for layer in self.layers:
            hidden_states = layer(hidden_states, attention_mask=mask)
        weights = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
        logits = self.head((hidden_states * weights).sum(1) / weights.sum(1).clamp_min(1.0))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


@torch.no_grad()
def encode_lower(encoder: nn.Module, tokenizer, texts: list[str], adapted_layers: int, max_length: int,
                 batch_size: int = 64, description: str = "encoding") -> dict[str, torch.Tensor]:
    """States entering the first adapted layer, for every text (padded to max_length), and the masks."""
    encoder.eval()
    states, masks = [], []
    index = encoder.config.num_hidden_layers - adapted_layers  # hidden_states[0] is the embedding output
    with progress_bar(transient=True) as bar:
        task = bar.add_task(description, total=len(texts))
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start:start + batch_size], padding="max_length", truncation=True,
                            max_length=max_length, return_tensors="pt")
            out = encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True)
            states.append(out.hidden_states[index])
            masks.append(enc["attention_mask"])
            bar.advance(task, len(enc["input_ids"]))
    return {"hidden_states": torch.cat(states), "attention_mask": torch.cat(masks)}


class EncoderClassifier(nn.Module):
    """Mean of the encoder's token states (padding excluded) -> linear head."""

    def __init__(self, encoder: nn.Module, num_labels: int):
        super().__init__()
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler = None  # unused by mean pooling; dropping it keeps adapters off it
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, input_ids, attention_mask, labels=None):
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        logits = self.head((states * mask).sum(1) / mask.sum(1).clamp_min(1.0))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


FULL = "full"  # no adapter: every weight of the encoder and the head trained (the baseline adapters approximate)


@dataclass
class TrainSettings:
    adapter: str = "bora"  # lora, dora, bora, or FULL
    r: int = 8
    order: str = "out_first"
    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    head_lr: float | None = None  # the new linear head's lr; None: lr (full fine-tuning wants a larger one)
    max_length: int = 64
    seed: int = 0
    targets: tuple[str, ...] = tuple(BERT_TARGETS)
    adapted_layers: int | None = None  # None: all layers; k: only the top k (lower states computed once)


def tokenize(tokenizer, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def scores(true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    return {"accuracy": float(accuracy_score(true, predicted)),
            "macro_f1": float(f1_score(true, predicted, average="macro", zero_division=0))}


def build_model(encoder: nn.Module, num_labels: int, settings: TrainSettings):
    torch.manual_seed(settings.seed)
    if settings.adapted_layers is None:
        model = EncoderClassifier(encoder, num_labels)
    else:
        model = TopLayersClassifier(encoder, num_labels, settings.adapted_layers)
    if settings.adapter == FULL:
        return model.requires_grad_(True)
    config = make_config(settings.adapter, r=settings.r, target_modules=list(settings.targets),
                         order=settings.order, modules_to_save=["head"])
    return attach(model, config)


class Inputs:
    """Model inputs for a list of examples: tokenised on the fly, or sliced from precomputed lower states."""

    def __init__(self, tokenizer, texts: list[str], max_length: int, features: dict | None = None):
        self.tokenizer, self.texts, self.max_length, self.features = tokenizer, texts, max_length, features

    def __len__(self) -> int:
        return len(self.texts)

    def batch(self, idx) -> dict[str, torch.Tensor]:
        if self.features is not None:
            index = torch.as_tensor(np.asarray(idx))
            return {k: v[index] for k, v in self.features.items()}
        return tokenize(self.tokenizer, [self.texts[i] for i in idx], self.max_length)


def make_inputs(encoder, tokenizer, texts: list[str], settings: TrainSettings, description: str) -> Inputs:
    features = None
    if settings.adapted_layers is not None:
        features = encode_lower(encoder, tokenizer, texts, settings.adapted_layers, settings.max_length,
                                description=description)
    return Inputs(tokenizer, texts, settings.max_length, features)


@torch.no_grad()
def predict(model, inputs: Inputs, batch_size: int = 128) -> np.ndarray:
    model.eval()
    out = [model(**inputs.batch(np.arange(start, min(start + batch_size, len(inputs)))))["logits"].argmax(-1).numpy()
           for start in range(0, len(inputs), batch_size)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def parameter_groups(model: nn.Module, settings: TrainSettings) -> list[dict]:
    """AdamW groups: the head at head_lr (when set), every other trainable weight at lr."""
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if settings.head_lr is None:
        return [{"params": [p for _, p in trainable], "lr": settings.lr}]
    is_head = [".head." in f".{name}" for name, _ in trainable]
    return [{"params": [p for (_, p), h in zip(trainable, is_head) if not h], "lr": settings.lr},
            {"params": [p for (_, p), h in zip(trainable, is_head) if h], "lr": settings.head_lr}]


def train_classifier(encoder: nn.Module, tokenizer, train: LabeledTextDataset, test: LabeledTextDataset,
                     settings: TrainSettings, description: str = "training",
                     inputs: tuple[Inputs, Inputs] | None = None) -> tuple[object, dict]:
    """Attach the adapter, train, evaluate; returns (peft model, metrics).

    `inputs` (train, test) lets several runs share the precomputed lower-layer states of one encoder.
    """
    if inputs is None:
        inputs = (make_inputs(encoder, tokenizer, train.texts, settings, "encoding train"),
                  make_inputs(encoder, tokenizer, test.texts, settings, "encoding test"))
    train_inputs, test_inputs = inputs
    model = build_model(encoder, train.num_labels, settings)
    optimizer = torch.optim.AdamW(parameter_groups(model, settings))
    params = [p for p in model.parameters() if p.requires_grad]
    rng = np.random.default_rng(settings.seed)
    steps_per_epoch = int(np.ceil(len(train) / settings.batch_size))
    losses = []
    with progress_bar() as bar:
        task = bar.add_task(description, total=settings.epochs * steps_per_epoch)
        for _ in range(settings.epochs):
            model.train()
            order = rng.permutation(len(train))
            for start in range(0, len(train), settings.batch_size):
                idx = order[start:start + settings.batch_size]
                loss = model(**train_inputs.batch(idx), labels=torch.as_tensor(train.labels[idx]))["loss"]
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(loss.item())
                bar.advance(task)
    predicted = predict(model, test_inputs)
    metrics = {**scores(test.labels, predicted), "final_train_loss": float(np.mean(losses[-10:])),
               "trainable_parameters": int(sum(p.numel() for p in params)),
               "train_size": len(train), "test_size": len(test), "settings": asdict(settings)}
    return model, metrics
