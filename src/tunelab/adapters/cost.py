"""Machine-independent cost of one training step: matmul FLOPs, aten op calls and elements written.

Wall time on a shared CPU moves with other processes' load; these counts do not. Matmul FLOPs (torch's
`FlopCounterMode`: mm, addmm, bmm, attention...) capture the GEMM work; the norms and rescalings that DoRA and
BoRA add are elementwise ops and reductions that the FLOP counter does not see, so the number of aten ops
dispatched and the elements they write are counted too (a proxy for the memory-bound part of the step).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class StepCost:
    matmul_flops: int = 0
    aten_ops: int = 0
    elements_written: int = 0


class _OpCounter(TorchDispatchMode):
    """Counts every aten op that reaches the dispatcher and the numel of the tensors it returns."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0
        self.elements = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        self.elements += sum(t.numel() for t in tree_leaves(out) if isinstance(t, torch.Tensor))
        return out


def count_step_cost(step) -> StepCost:
    """Run `step()` (e.g. forward + backward + optimizer step) once and count what it dispatched."""
    flops = FlopCounterMode(display=False)
    ops = _OpCounter()
    with flops, ops:
        step()
    return StepCost(matmul_flops=flops.get_total_flops(), aten_ops=ops.ops, elements_written=ops.elements)
