"""PoFT loss, its gradient and the response-token score against hand-computed references."""

import math

import pytest
import torch

from tunelab.align.poft.loss import (data_hash, mean_response_logprob, poft_loss, poft_weight, reference_score,
                                     sft_loss, validate_examples)
from tunelab.errors import UserError


def _softplus(x):
    return math.log1p(math.exp(x))


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


@pytest.mark.parametrize("beta,gamma", [(1.0, 0.0), (2.0, 0.3), (0.5, -1.0)])
def test_loss_and_gradient_match_hand_formula(beta, gamma):
    s_theta_values, s_ref_values = [-1.0, -2.0, -0.25], [-1.5, -0.5, -3.0]
    s_theta = torch.tensor(s_theta_values, dtype=torch.float64, requires_grad=True)
    s_ref = torch.tensor(s_ref_values, dtype=torch.float64)
    loss = poft_loss(s_theta, s_ref, beta, gamma)
    loss.sum().backward()
    for i, (st, sr) in enumerate(zip(s_theta_values, s_ref_values)):
        z = beta * (st - sr) + gamma
        assert loss[i].item() == pytest.approx(_softplus(-z), rel=1e-12)  # -log sigmoid(z) = log(1 + e^-z)
        assert s_theta.grad[i].item() == pytest.approx(-beta * _sigmoid(-z), rel=1e-12)
    assert torch.allclose(s_theta.grad, -beta * poft_weight(s_theta.detach(), s_ref, beta, gamma))


def test_loss_values_on_a_worked_example():
    # beta=1, gamma=0, s_theta - s_ref = 0.5 and -1.5, worked out by hand: log(1+e^-0.5), log(1+e^1.5)
    loss = poft_loss(torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -0.5]))
    assert loss.tolist() == pytest.approx([0.4740769841801067, 1.7014132779827524], rel=1e-6)


def _toy_batch(seed=0):
    torch.manual_seed(seed)
    logits = torch.randn(2, 6, 11, dtype=torch.float64, requires_grad=True)
    input_ids = torch.randint(0, 11, (2, 6))
    completion_mask = torch.ones(2, 6, dtype=torch.long)
    completion_mask[0, :3] = 0  # prompt of 3 tokens, 3 response tokens
    completion_mask[1, :2] = 0
    completion_mask[1, 5] = 0  # padding
    return logits, input_ids, completion_mask


def test_mean_response_logprob_matches_explicit_loop():
    logits, ids, mask = _toy_batch()
    got = mean_response_logprob(logits, ids, mask)
    logp = torch.log_softmax(logits, -1)
    for b in range(2):
        terms = [logp[b, t - 1, ids[b, t]] for t in range(1, 6) if mask[b, t]]
        assert got[b].item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-12)


def test_poft_gradient_is_weighted_per_example_sft_gradient():
    logits, ids, mask = _toy_batch(1)
    s_ref = torch.tensor([-2.0, -4.0], dtype=torch.float64)
    s_theta = mean_response_logprob(logits, ids, mask)
    grad_poft, = torch.autograd.grad(poft_loss(s_theta, s_ref).sum(), logits)
    weights = poft_weight(s_theta.detach(), s_ref)
    for b in range(2):
        grad_sft, = torch.autograd.grad(-mean_response_logprob(logits, ids, mask)[b], logits)
        assert torch.allclose(grad_poft[b], weights[b] * grad_sft[b], atol=1e-12)


def test_sft_loss_is_token_mean_nll():
    logits, ids, mask = _toy_batch(2)
    logp = torch.log_softmax(logits, -1)
    terms = [-logp[b, t - 1, ids[b, t]] for b in range(2) for t in range(1, 6) if mask[b, t]]
    assert sft_loss(logits, ids, mask).item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-12)


def test_reference_score_is_mean_over_models():
    assert reference_score([[-1.0, -3.0], [-2.0, -5.0]]) == [-1.5, -4.0]
    with pytest.raises(UserError, match="different numbers"):
        reference_score([[-1.0], [-1.0, -2.0]])


def test_empty_response_and_missing_fields_are_one_line_errors():
    with pytest.raises(UserError, match="example 1: empty response") as err:
        validate_examples([{"prompt": "a", "response": "b"}, {"prompt": "c", "response": "  "}])
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="needs string fields"):
        validate_examples([{"question": "a", "answer": "b"}])
    with pytest.raises(UserError, match="empty"):
        validate_examples([])


def test_no_response_tokens_is_an_error():
    logits, ids, mask = _toy_batch()
    mask[0] = 0
    with pytest.raises(UserError, match="no response tokens"):
        mean_response_logprob(logits, ids, mask)


def test_data_hash_changes_with_content_and_order():
    pairs = [("p1", "r1"), ("p2", "r2")]
    assert data_hash(pairs) == data_hash(list(pairs))
    assert data_hash(pairs) != data_hash([("p1", "r1"), ("p2", "r2 ")])
    assert data_hash(pairs) != data_hash(pairs[::-1])
