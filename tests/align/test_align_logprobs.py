"""The shared log-prob kernel: equal to log_softmax(logits).gather(...) in values and gradients, and lean in memory."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tunelab.align.logprobs import (chunk_rows, fusable_head, linear_logps, model_token_logps, selective_logps,
                                    sequence_logps)


def naive(hidden, weight, bias, targets):
    logits = torch.nn.functional.linear(hidden, weight, bias)
    return torch.log_softmax(logits.float(), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def _problem(rows=37, h=16, v=301, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(rows, h, generator=g, requires_grad=True)
    weight = torch.randn(v, h, generator=g, requires_grad=True)
    b = torch.randn(v, generator=g, requires_grad=True) if bias else None
    return hidden, weight, b, torch.randint(0, v, (rows,), generator=g)


@pytest.mark.parametrize("chunk", [1, 5, 37, 100])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_logps_values_and_gradients_match_naive(chunk, bias):
    hidden, weight, b, targets = _problem(bias=bias)
    upstream = torch.randn(hidden.size(0))  # a non-uniform incoming gradient
    params = [hidden, weight] + ([b] if bias else [])
    want = naive(hidden, weight, b, targets)
    want_grads = torch.autograd.grad((want * upstream).sum(), params)
    got = linear_logps(hidden, weight, b, targets, chunk=chunk)
    got_grads = torch.autograd.grad((got * upstream).sum(), params)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


def test_selective_logps_matches_log_softmax_gather_in_float64():
    logits = torch.randn(3, 7, 50, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (3, 7))
    want = torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    got = selective_logps(logits, targets, chunk=4)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    (g1,), (g2,) = torch.autograd.grad(got.sum(), logits), torch.autograd.grad(want.sum(), logits)
    torch.testing.assert_close(g1, g2, atol=1e-12, rtol=0)


def test_no_rows_still_backpropagates():
    hidden, weight, b, targets = _problem(rows=0)
    linear_logps(hidden, weight, b, targets).sum().backward()
    assert hidden.grad.shape == hidden.shape and float(weight.grad.abs().sum()) == 0.0


class LargestTensor(TorchDispatchMode):
    """The largest tensor any op produces (elements): a bound on the peak of intermediate memory."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def saved_bytes(fn):
    """Bytes autograd saves for backward while fn runs (parameters excluded: they are held anyway)."""
    seen, total = set(), [0]

    def pack(t):
        if not isinstance(t, torch.nn.Parameter) and t.untyped_storage().data_ptr() not in seen:
            seen.add(t.untyped_storage().data_ptr())
            total[0] += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, total[0]


def test_linear_logps_never_holds_full_logits_nor_saves_them():
    rows, h, v, chunk = 512, 8, 4096, 32
    hidden = torch.randn(rows, h, requires_grad=True)
    weight = torch.nn.Parameter(torch.randn(v, h))
    targets = torch.randint(0, v, (rows,))
    full = rows * v
    with LargestTensor() as naive_mode:
        out, naive_saved = saved_bytes(lambda: naive(hidden, weight, None, targets))
        out.sum().backward()
    with LargestTensor() as mode:
        out, saved = saved_bytes(lambda: linear_logps(hidden, weight, None, targets, chunk=chunk))
        out.sum().backward()
    assert naive_mode.largest >= full and naive_saved >= 4 * full  # the naive path holds and saves [rows, V]
    assert mode.largest <= max(chunk * v, v * h)  # one chunk of logits (or the weight's gradient) at a time
    assert saved <= 4 * rows * (h + 2) + 8 * rows  # hidden, targets and one logsumexp per row


@pytest.fixture(scope="module")
def tiny():
    from tunelab.models import tiny_llama

    model, tok = tiny_llama(seed=0)
    return model.train(), tok


def _batch(tok, n=3, t=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, len(tok), (n, t), generator=g)
    attention = torch.ones(n, t, dtype=torch.long)
    attention[0, -3:] = 0  # right padding
    completion = torch.zeros(n, t, dtype=torch.long)
    completion[:, 5:] = 1
    completion[0, -3:] = 0
    return ids, attention, completion


def test_model_token_logps_match_the_models_logits_in_values_and_gradients(tiny):
    model, tok = tiny
    ids, attention, completion = _batch(tok)
    assert fusable_head(model) is model.lm_head
    mask = completion[:, 1:].bool()

    def reference():
        logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1]
        return torch.log_softmax(logits.float(), -1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1) * mask

    params = [p for p in model.parameters() if p.requires_grad]
    want = reference()
    want_grads = torch.autograd.grad(want.sum(), params)
    got = model_token_logps(model, ids, attention, mask, chunk=7)
    got_grads = torch.autograd.grad(got.sum(), params)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    for g, w in zip(got_grads, want_grads):  # embeddings (tied to the LM head) included
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)
    assert model.lm_head.forward.__self__ is model.lm_head  # the head is itself again


def test_sequence_logps_fused_equals_logits_fallback(tiny, monkeypatch):
    import tunelab.align.logprobs as logprobs

    model, tok = tiny
    ids, attention, completion = _batch(tok, seed=1)
    with torch.no_grad():
        fused = sequence_logps(model, ids, attention, completion)
        monkeypatch.setattr(logprobs, "fusable_head", lambda m: None)
        fallback = sequence_logps(model, ids, attention, completion)
    torch.testing.assert_close(fused, fallback, atol=1e-5, rtol=1e-6)


def test_logit_transforms_fall_back_to_logits(tiny, monkeypatch):
    model, _ = tiny
    monkeypatch.setattr(model.config, "final_logit_softcapping", 30.0, raising=False)
    assert fusable_head(model) is None


def test_peft_model_keeps_the_fused_head(tiny):
    from peft import LoraConfig, get_peft_model

    model, tok = tiny
    from tunelab.models import tiny_llama

    fresh, _ = tiny_llama(seed=0)
    peft = get_peft_model(fresh, LoraConfig(r=2, target_modules="all-linear", task_type="CAUSAL_LM"))
    assert fusable_head(peft) is fresh.lm_head
    ids, attention, completion = _batch(tok, seed=2)
    with torch.no_grad():
        logits = peft(input_ids=ids, attention_mask=attention).logits
        want = (torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
                * completion[:, 1:]).sum(-1)
        torch.testing.assert_close(sequence_logps(peft, ids, attention, completion), want, atol=1e-5, rtol=1e-6)


def test_chunk_rows_fits_the_budget():
    assert chunk_rows(49152) == 64 * 2**20 // (4 * 49152) and chunk_rows(10**9) == 1


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny ops: worker threads only spin on a shared CPU
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
