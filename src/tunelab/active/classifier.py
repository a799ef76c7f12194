"""The classifier of the active-learning loop: the top of an encoder plus a linear head.

It reads cached hidden states (`features.FeaturePool`) so each round retrains only what is
trainable: the head alone by default (seconds per round on a CPU), or the last k encoder
layers as well (`trainable_layers`), up to every layer. The same function f(h, mask) -> logits
serves training, prediction, the embeddings of BERT-KM / BADGE / core-set and VAP.
"""

from __future__ import annotations

import copy
import dataclasses
import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tunelab.active.features import FeaturePool, masked_mean
from tunelab.active.vap import VAPResult, virtual_adversarial_perturbation
from tunelab.errors import UserError


@dataclasses.dataclass
class ClassifierConfig:
    encoder: str = "all-minilm-l6-v2"
    trainable_layers: int = 0  # 0: head only on pooled states; k: last k layers too
    max_length: int = 64
    steps: int = 300  # AdamW steps per round when encoder layers train
    batch_size: int = 64
    head_l2: float = 1e-3  # head only: L2 on the weights, full-batch L-BFGS (a convex problem)
    lbfgs_iterations: int = 100
    head_lr: float = 1e-2
    layer_lr: float = 5e-5
    weight_decay: float = 1e-4
    eval_batch_size: int = 512


def additive_attention_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) bool -> (B, 1, 1, T) additive mask: 0 on real tokens, a large negative on padding."""
    return (~mask)[:, None, None, :].to(dtype) * torch.finfo(dtype).min


class TopClassifier(nn.Module):
    """Last k encoder layers (possibly none), masked mean pooling, linear head."""

    def __init__(self, layers: nn.ModuleList | None, hidden_size: int, num_labels: int):
        super().__init__()
        self.layers = layers if layers is not None else nn.ModuleList()
        self.head = nn.Linear(hidden_size, num_labels)

    def represent(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The pooled representation the head reads (the BADGE / BERT-KM / core-set embedding)."""
        if len(self.layers):
            attention = additive_attention_mask(mask, hidden.dtype)
            for layer in self.layers:
                out = layer(hidden, attention_mask=attention)
                hidden = out[0] if isinstance(out, tuple) else out
        return masked_mean(hidden, mask)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.represent(hidden, mask))


def encoder_top_layers(encoder, k: int) -> nn.ModuleList | None:
    """A copy of the last k transformer layers of a BERT-like encoder (None for k = 0)."""
    if k == 0:
        return None
    stack = getattr(getattr(encoder, "encoder", None), "layer", None)
    if stack is None:
        raise UserError("training encoder layers needs a BERT-like encoder (model.encoder.layer); "
                        "use trainable_layers=0 for this one")
    if not 1 <= k <= len(stack):
        raise UserError(f"trainable layers must lie in [0, {len(stack)}], got {k}")
    return copy.deepcopy(nn.ModuleList(list(stack)[len(stack) - k:]))


@functools.lru_cache(maxsize=2)
def _load_encoder_once(name: str):
    """The pretrained encoder, loaded once per process (every run copies its top layers)."""
    from tunelab.models import load_encoder

    return load_encoder(name)[0]


class ActiveClassifier:
    """Fit / predict / embed / VAP on a FeaturePool, retrained from the same initial weights each round."""

    def __init__(self, config: ClassifierConfig, num_labels: int, hidden_size: int,
                 layers_template: nn.ModuleList | None = None):
        if num_labels < 2:
            raise UserError(f"a classifier needs at least two labels, got {num_labels}")
        self.config = config
        self.num_labels = num_labels
        self.hidden_size = hidden_size
        self.layers_template = layers_template
        self.model: TopClassifier | None = None

    @classmethod
    def for_encoder(cls, config: ClassifierConfig, num_labels: int) -> "ActiveClassifier":
        encoder = _load_encoder_once(config.encoder)
        return cls(config, num_labels, encoder.config.hidden_size,
                   encoder_top_layers(encoder, config.trainable_layers))

    def fresh_model(self, seed: int) -> TopClassifier:
        torch.manual_seed(seed)
        layers = copy.deepcopy(self.layers_template) if self.layers_template is not None else None
        return TopClassifier(layers, self.hidden_size, self.num_labels)

    def fit(self, pool: FeaturePool, idx: np.ndarray, labels: np.ndarray, seed: int,
            warm_start: bool = False) -> "ActiveClassifier":
        idx, labels = np.asarray(idx), np.asarray(labels)
        if len(idx) == 0:
            raise UserError("the labeled set is empty")
        if len(np.unique(labels)) < 2:
            raise UserError(f"the labeled set has a single class ({int(labels[0])}): draw a larger or "
                            "stratified initial set so a classifier can be trained")
        if self.model is None or not warm_start:
            self.model = self.fresh_model(seed)
        model, cfg = self.model, self.config
        targets = torch.as_tensor(labels, dtype=torch.long)
        hidden_all, mask_all = pool.batch(idx)  # gathered once: the labelled set is small
        model.train()
        if len(model.layers) == 0:
            self._fit_head_lbfgs(hidden_all, mask_all, targets)
        else:
            self._fit_adamw(hidden_all, mask_all, targets, np.random.default_rng(seed))
        model.eval()
        return self

    def _fit_head_lbfgs(self, hidden, mask, targets) -> None:
        model, cfg = self.model, self.config
        features = model.represent(hidden, mask).detach()
        optimiser = torch.optim.LBFGS(model.head.parameters(), lr=1.0, max_iter=cfg.lbfgs_iterations,
                                      history_size=20, line_search_fn="strong_wolfe")

        def closure():
            optimiser.zero_grad()
            loss = F.cross_entropy(model.head(features), targets) + cfg.head_l2 * model.head.weight.pow(2).sum()
            loss.backward()
            return loss

        optimiser.step(closure)

    def _fit_adamw(self, hidden, mask, targets, rng: np.random.Generator) -> None:
        model, cfg = self.model, self.config
        groups = [{"params": model.head.parameters(), "lr": cfg.head_lr},
                  {"params": model.layers.parameters(), "lr": cfg.layer_lr}]
        optimiser = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
        for _ in range(cfg.steps):
            pick = torch.as_tensor(rng.choice(len(targets), size=min(cfg.batch_size, len(targets)), replace=False))
            loss = F.cross_entropy(model(hidden[pick], mask[pick]), targets[pick])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()

    def _require_model(self) -> TopClassifier:
        if self.model is None:
            raise RuntimeError("fit the classifier first")
        return self.model

    def _batches(self, idx: np.ndarray):
        idx = np.asarray(idx)
        for start in range(0, len(idx), self.config.eval_batch_size):
            yield idx[start:start + self.config.eval_batch_size]

    @torch.no_grad()
    def predict_proba(self, pool: FeaturePool, idx: np.ndarray) -> np.ndarray:
        model = self._require_model()
        out = [F.softmax(model(*pool.batch(b)), -1).numpy() for b in self._batches(idx)]
        return np.concatenate(out) if out else np.zeros((0, self.num_labels))

    @torch.no_grad()
    def embed(self, pool: FeaturePool, idx: np.ndarray) -> np.ndarray:
        model = self._require_model()
        out = [model.represent(*pool.batch(b)).numpy() for b in self._batches(idx)]
        return np.concatenate(out) if out else np.zeros((0, self.hidden_size))

    def vap(self, pool: FeaturePool, idx: np.ndarray, xi: float, eps: float, power_iterations: int,
            seed: int) -> dict[str, np.ndarray]:
        """Pooled perturbation r (n, d), its smoothness KL(p||p(h+r)), gradient norm and p."""
        model = self._require_model()
        generator = torch.Generator().manual_seed(seed)
        parts: dict[str, list[np.ndarray]] = {"r": [], "smoothness": [], "grad_norm": [], "probs": []}
        for b in self._batches(idx):
            hidden, mask = pool.batch(b)
            res: VAPResult = virtual_adversarial_perturbation(model, hidden, mask, xi=xi, eps=eps,
                                                               power_iterations=power_iterations,
                                                               generator=generator)
            parts["r"].append(masked_mean(res.perturbation, mask).numpy())
            parts["smoothness"].append(res.smoothness.numpy())
            parts["grad_norm"].append(res.grad_norm.numpy())
            parts["probs"].append(res.probs.numpy())
        return {k: np.concatenate(v) for k, v in parts.items()}
