"""The step-cost counter against the matmul FLOP formula."""

import torch
from tunelab.adapters.cost import count_step_cost


def test_linear_forward_and_backward_flops_match_formula():
    batch, fan_in, fan_out = 3, 8, 5
    layer = torch.nn.Linear(fan_in, fan_out)
    x = torch.randn(batch, fan_in)
    forward = count_step_cost(lambda: layer(x))
    assert forward.matmul_flops == 2 * batch * fan_in * fan_out
    assert forward.elements_written >= batch * fan_out and forward.aten_ops >= 1

    x_with_grad = x.clone().requires_grad_(True)
    both = count_step_cost(lambda: layer(x_with_grad).sum().backward())
    # backward: one GEMM for the weight's gradient and one for the input's, each as large as the forward
    assert both.matmul_flops == 3 * 2 * batch * fan_in * fan_out
    assert both.aten_ops > forward.aten_ops
