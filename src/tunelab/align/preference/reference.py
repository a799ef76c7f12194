"""The reference model's log-probs of every sequence of every preference group, computed once before training."""

from __future__ import annotations

from typing import Sequence

import torch

from tunelab.align.logprobs import reference_context, sequence_logps
from tunelab.align.preference.data import collate_groups


@torch.no_grad()
def group_reference_logps(
    model, groups: Sequence[dict], pad_token_id: int, batch_size: int = 8, average: bool = False, progress=None
) -> list[list[float]]:
    """Reference log-probs of every sequence of every group (list per group), in eval mode, adapters off.

    `progress`: optional callable wrapping the batch iterator (e.g. tunelab.progress.track).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    starts = range(0, len(groups), batch_size)
    if progress is not None:
        starts = progress(starts)
    out: list[list[float]] = []
    try:
        with reference_context(model):
            for start in starts:
                chunk = groups[start : start + batch_size]
                batch = collate_groups(chunk, pad_token_id)
                logps = sequence_logps(
                    model,
                    batch["input_ids"].to(device),
                    batch["attention_mask"].to(device),
                    batch["completion_mask"].to(device),
                    average=average,
                )
                out.extend(logps.view(len(chunk), -1).cpu().tolist())
    finally:
        model.train(was_training)
    return out
