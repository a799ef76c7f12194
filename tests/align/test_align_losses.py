"""Losses against TRL's DPOTrainer (its real `_compute_loss`, fed known per-token log-probs) and closed forms."""

from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from trl import DPOTrainer

from tunelab.align.preference.losses import dpo_loss, epa_loss, epa_loss_from_rewards, implicit_rewards


def trl_dpo_sigmoid_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta, seq_len=7, seed=0):
    """Run TRL's DPOTrainer._compute_loss on a fake model whose per-token log-probs sum to the given numbers.

    The per-sequence totals are split over a random number of response tokens so the test also exercises
    TRL's masking and summation.
    """
    gen = torch.Generator().manual_seed(seed)
    logps = torch.cat([policy_chosen, policy_rejected]).double()
    rows = logps.shape[0]
    completion_mask = torch.zeros(rows, seq_len + 1, dtype=torch.long)
    per_token = torch.zeros(rows, seq_len, dtype=torch.float64)
    for i in range(rows):
        n = int(torch.randint(1, seq_len - 1, (1,), generator=gen))
        start = seq_len + 1 - n
        completion_mask[i, start:] = 1
        weights = torch.rand(n, generator=gen, dtype=torch.float64) + 0.1
        per_token[i, start - 1 :] = logps[i] * weights / weights.sum()

    def fake_model(**kwargs):
        return SimpleNamespace(
            log_probs=per_token,
            entropy=torch.zeros_like(per_token),
            mean_logits=torch.zeros_like(per_token),
            is_top1=torch.zeros_like(per_token, dtype=torch.bool),
        )

    fake_self = SimpleNamespace(
        model=SimpleNamespace(training=True),
        accelerator=SimpleNamespace(device="cpu", gather_for_metrics=lambda x: x, gather=lambda x: x),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=["sigmoid"],
        loss_weights=[1.0],
        beta=beta,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
        use_weighting=False,
        label_smoothing=0.0,
        ref_model=None,
        args=SimpleNamespace(),
    )
    inputs = {
        "input_ids": torch.zeros(rows, seq_len + 1, dtype=torch.long),
        "attention_mask": torch.ones(rows, seq_len + 1, dtype=torch.long),
        "completion_mask": completion_mask,
        "ref_chosen_logps": ref_chosen.double(),
        "ref_rejected_logps": ref_rejected.double(),
    }
    loss = DPOTrainer._compute_loss(fake_self, fake_model, inputs, return_outputs=False)
    return loss, fake_self._metrics["train"]


def random_logps(seed, batch):
    gen = torch.Generator().manual_seed(seed)
    return [-(torch.rand(batch, generator=gen, dtype=torch.float64) * 60 + 1) for _ in range(4)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("beta", [0.05, 0.1, 0.5])
def test_dpo_and_epa_match_trl_sigmoid(seed, beta):
    pc, pr, rc, rr = random_logps(seed, batch=8)
    trl_loss, metrics = trl_dpo_sigmoid_loss(pc, pr, rc, rr, beta, seed=seed)
    ours_dpo = dpo_loss(pc, pr, rc, rr, beta=beta).mean()
    ours_epa = epa_loss(pc, rc, pr.unsqueeze(-1), rr.unsqueeze(-1), beta=beta, w=1.0).mean()
    assert abs(float(ours_dpo - trl_loss)) < 1e-6
    assert abs(float(ours_epa - trl_loss)) < 1e-6
    # TRL's logged rewards are our implicit rewards
    assert math.isclose(metrics["rewards/chosen"][0], float(implicit_rewards(pc, rc, beta).mean()), abs_tol=1e-6)


def test_epa_closed_form_with_weights():
    gen = torch.Generator().manual_seed(1)
    chosen = torch.randn(5, generator=gen, dtype=torch.float64)
    strong = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    weak = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    got = epa_loss_from_rewards(chosen, strong, weak, w=0.7, weak_weight=0.25)
    expected = torch.log(
        0.7 + torch.exp(strong - chosen[:, None]).sum(-1) + 0.25 * torch.exp(weak - chosen[:, None]).sum(-1)
    )
    torch.testing.assert_close(got, expected)


def test_epa_w_zero_is_linear_not_dpo():
    chosen, strong = torch.tensor([2.0]), torch.tensor([[0.5]])
    assert float(epa_loss_from_rewards(chosen, strong, w=0.0)) == pytest.approx(-1.5)
    assert float(epa_loss_from_rewards(chosen, strong, w=1.0)) == pytest.approx(float(-F.logsigmoid(torch.tensor(1.5))))


def test_epa_stable_for_huge_margins():
    chosen, strong = torch.tensor([500.0]), torch.tensor([[-500.0]])
    assert torch.isfinite(epa_loss_from_rewards(chosen, strong, w=1.0)).all()
    assert torch.isfinite(epa_loss_from_rewards(-chosen, -strong, w=1.0)).all()
