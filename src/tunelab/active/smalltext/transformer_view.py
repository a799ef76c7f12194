"""tunelab's model interface over small-text's `TransformerBasedClassification` and its `TransformersDataset`.

tunelab's strategies ask a model for `predict_proba(pool, idx)`, `embed(pool, idx)` and
`vap(pool, idx, ...)`; here `pool` is the small-text dataset and the network is the classifier's
Hugging Face sequence-classification model:

- embeddings are the input of the last linear layer (BADGE's gradient is taken there; small-text's
  own `embed` averages token states instead, padding included);
- VAP perturbs the input token embeddings, so the whole fine-tuned encoder lies between the
  perturbation and the prediction (the paper's regime), with padding masked out.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tunelab.active.features import masked_mean
from tunelab.active.vap import virtual_adversarial_perturbation


def classification_head(net: nn.Module, num_labels: int) -> nn.Linear:
    """The last linear layer with one output per class (BERT's `classifier`, RoBERTa's `classifier.out_proj`)."""
    heads = [m for m in net.modules() if isinstance(m, nn.Linear) and m.out_features == num_labels]
    if not heads:
        raise ValueError(f"found no linear layer with {num_labels} outputs in {type(net).__name__}")
    return heads[-1]


class TransformerView:
    def __init__(self, clf, batch_size: int = 32):
        self.net = clf.model.eval()  # VAP and the embeddings need a deterministic function: no dropout
        self.num_labels = int(clf.num_classes)
        self.head = classification_head(self.net, self.num_labels)
        self.device = next(self.net.parameters()).device
        self.batch_size = batch_size
        self._memo: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def _batches(self, dataset, idx: np.ndarray):
        """(input ids, mask) per batch, trimmed to the longest real sequence (trailing padding changes nothing)."""
        data = dataset.data  # once: a view rebuilds the list on every access
        for start in range(0, len(idx), self.batch_size):
            rows = [data[i] for i in idx[start:start + self.batch_size]]
            ids = torch.cat([r[0] for r in rows]).to(self.device)
            mask = torch.cat([r[1] for r in rows]).to(self.device).bool()
            width = int(mask.sum(1).max())
            yield ids[:, :width], mask[:, :width]

    def _logits(self, inputs_embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(inputs_embeds=inputs_embeds, attention_mask=mask.long()).logits

    @torch.no_grad()
    def _forward(self, dataset, idx) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, head inputs) of the examples, one pass shared by predict_proba and embed."""
        idx = np.asarray(idx, dtype=np.int64)
        key = idx.tobytes()
        if key not in self._memo:
            seen: list[tuple[torch.Tensor, torch.Tensor]] = []
            hook = self.head.register_forward_hook(lambda _m, inputs, output: seen.append((inputs[0], output)))
            probs, emb = [], []
            try:
                for ids, mask in self._batches(dataset, idx):
                    seen.clear()
                    logits = self.net(input_ids=ids, attention_mask=mask.long()).logits
                    head_in, head_out = seen[-1]
                    if head_out.shape != logits.shape or not torch.equal(head_out, logits):
                        raise ValueError(f"the last {self.num_labels}-output linear layer of "
                                         f"{type(self.net).__name__} does not give its logits")
                    probs.append(F.softmax(logits.float(), -1).cpu().numpy())
                    emb.append(head_in.float().cpu().numpy())
            finally:
                hook.remove()
            self._memo = {key: (np.concatenate(probs), np.concatenate(emb))}  # BADGE asks twice for the same rows
        return self._memo[key]

    def predict_proba(self, dataset, idx) -> np.ndarray:
        return self._forward(dataset, idx)[0]

    def embed(self, dataset, idx) -> np.ndarray:
        return self._forward(dataset, idx)[1]

    def vap(self, dataset, idx, xi: float, eps: float, power_iterations: int, seed: int) -> dict[str, np.ndarray]:
        """Pooled VAP of the input embeddings, its smoothness KL(p||p(h+r)), gradient norm and p."""
        idx = np.asarray(idx, dtype=np.int64)
        generator = torch.Generator().manual_seed(seed)  # on the CPU, so a GPU run draws the same directions
        embeddings = self.net.get_input_embeddings()
        parts: dict[str, list[np.ndarray]] = {"r": [], "smoothness": [], "grad_norm": [], "probs": []}
        for ids, mask in self._batches(dataset, idx):
            with torch.no_grad():
                hidden = embeddings(ids)
            init = torch.randn(hidden.shape, generator=generator, dtype=hidden.dtype).to(self.device)
            res = virtual_adversarial_perturbation(self._logits, hidden, mask, xi=xi, eps=eps,
                                                   power_iterations=power_iterations, init=init)
            parts["r"].append(masked_mean(res.perturbation, mask).float().cpu().numpy())
            for name, value in (("smoothness", res.smoothness), ("grad_norm", res.grad_norm), ("probs", res.probs)):
                parts[name].append(value.float().cpu().numpy())
        return {k: np.concatenate(v) for k, v in parts.items()}
