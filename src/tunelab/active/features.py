"""Encoder hidden states of a text pool, computed once and cached on disk.

The classifier trains only what sits above a chosen layer of the encoder, so the frozen part
runs once per corpus instead of once per round:

- `trainable_layers = 0`: the masked mean of the last layer, one vector per text (T = 1).
  With a linear head the mean pool is linear, so a perturbation of the token states acts
  through their mean: VAP on the pooled vector is VAP on the tokens up to a length factor.
- `trainable_layers = k > 0`: token states entering the last k layers (T tokens, padded,
  with a mask); `k = number of layers` fine-tunes every transformer layer (embeddings frozen).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from pathlib import Path

import numpy as np
import torch

from tunelab.errors import UserError
from tunelab.io import atomic_write_bytes


@dataclasses.dataclass
class FeaturePool:
    """Hidden states of n texts: `hidden` (n, T, d) and `mask` (n, T) of real tokens."""

    hidden: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return self.hidden.shape[0]

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        return self.hidden[idx].float(), self.mask[idx]

    def subset(self, idx: np.ndarray) -> "FeaturePool":
        h, m = self.batch(idx)
        return FeaturePool(h.to(self.hidden.dtype), m)


def check_texts(texts: list[str]) -> None:
    if len(texts) == 0:
        raise UserError("no texts to encode")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"text {i} is empty: remove empty texts before active learning")


def cache_dir() -> Path:
    root = os.environ.get("TUNELAB_CACHE") or Path.home() / ".cache" / "tunelab"
    return Path(root) / "active" / "features"


def _cache_key(texts: list[str], encoder: str, trainable_layers: int, max_length: int) -> str:
    digest = hashlib.sha256(f"{encoder}|{trainable_layers}|{max_length}|{len(texts)}".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "replace"))
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def num_encoder_layers(model) -> int:
    return int(model.config.num_hidden_layers)


def encode_pool(texts: list[str], model, tokenizer, trainable_layers: int = 0, max_length: int = 64,
                batch_size: int = 64, progress: bool = True) -> FeaturePool:
    """Run the frozen part of `model` over `texts` (sorted by length to pad little)."""
    from tunelab.progress import track

    check_texts(texts)
    layers = num_encoder_layers(model)
    if not 0 <= trainable_layers <= layers:
        raise UserError(f"trainable layers must lie in [0, {layers}] for this encoder, got {trainable_layers}")
    lengths = [len(t) for t in texts]
    order = np.argsort(lengths, kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    pooled = trainable_layers == 0
    width = 1 if pooled else max_length
    hidden = torch.zeros(len(texts), width, model.config.hidden_size,
                         dtype=torch.float32 if pooled else torch.float16)
    mask = torch.zeros(len(texts), width, dtype=torch.bool)
    model.eval()
    iterator = track(batches, "encoding texts") if progress else batches
    with torch.no_grad():
        for idx in iterator:
            enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt")
            out = model(**enc, output_hidden_states=not pooled)
            token_mask = enc["attention_mask"].bool()
            rows = torch.as_tensor(idx)
            if pooled:
                hidden[rows, 0] = masked_mean(out.last_hidden_state, token_mask)
                mask[rows, 0] = True
            else:
                states = out.hidden_states[layers - trainable_layers]
                t = states.shape[1]
                hidden[rows, :t] = states.to(hidden.dtype)
                mask[rows, :t] = token_mask
    return FeaturePool(hidden, mask)


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(states.dtype).unsqueeze(-1)
    return (states * m).sum(1) / m.sum(1).clamp_min(1.0)


def cached_encode_pool(texts: list[str], encoder: str = "all-minilm-l6-v2", trainable_layers: int = 0,
                       max_length: int = 64, progress: bool = True, use_cache: bool = True) -> FeaturePool:
    """`encode_pool` with the embedded or named encoder, cached under ~/.cache/tunelab/active."""
    check_texts(texts)
    path = cache_dir() / f"{_cache_key(texts, encoder, trainable_layers, max_length)}.pt"
    if use_cache and path.exists():
        data = torch.load(path, weights_only=True)
        return FeaturePool(data["hidden"], data["mask"])
    from tunelab.models import load_encoder

    model, tokenizer = load_encoder(encoder)
    pool = encode_pool(texts, model, tokenizer, trainable_layers, max_length, progress=progress)
    if use_cache:
        buffer = io.BytesIO()
        torch.save({"hidden": pool.hidden, "mask": pool.mask}, buffer)
        atomic_write_bytes(path, buffer.getvalue())
    return pool
