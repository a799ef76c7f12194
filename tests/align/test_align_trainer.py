"""The DPO/EPA trainer: equal to TRL's DPOTrainer on a real (tiny) model, references, logging, resume."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from peft import LoraConfig

from tunelab.align.preference.config import AlignConfig
from tunelab.align.logprobs import sequence_logps
from tunelab.align.preference.losses import dpo_loss
from tunelab.align.preference.trainer import PreferenceTrainer, _collate, prepare_groups
from tunelab.models import tiny_llama

_here = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("align_conftest", _here / "conftest.py")
_conf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conf)
make_records = _conf.make_records

LORA = dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")


def args(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path / "run"), use_cpu=True, per_device_train_batch_size=4, learning_rate=5e-3,
                max_steps=2, logging_steps=1, save_strategy="no", seed=0, disable_tqdm=True)
    return AlignConfig(**{**base, **kw})


def test_dpo_loss_on_model_equals_trl_dpotrainer(tmp_path):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    policy, tok = tiny_llama(seed=1)
    ref, _ = tiny_llama(seed=0)
    recs = make_records(4, rejected=1, conversational=True)
    trl = DPOTrainer(model=policy, ref_model=ref, processing_class=tok, train_dataset=Dataset.from_list(recs),
                     args=DPOConfig(output_dir=str(tmp_path / "trl"), report_to="none", use_cpu=True, beta=0.1,
                                    max_length=None, bf16=False))  # TRL's default is bf16 autocast; ours fp32
    trl_batch = trl.data_collator([trl.train_dataset[i] for i in range(4)])
    with torch.no_grad():
        trl_loss = float(trl.compute_loss(trl.model, trl_batch))
    batch = _collate(prepare_groups(recs, tok, args(tmp_path, method="dpo")), tok.pad_token_id)
    with torch.no_grad():
        lp = sequence_logps(policy, batch["input_ids"], batch["attention_mask"], batch["completion_mask"]).view(-1, 2)
        rl = sequence_logps(ref, batch["input_ids"], batch["attention_mask"], batch["completion_mask"]).view(-1, 2)
    ours = float(dpo_loss(lp[:, 0], lp[:, 1], rl[:, 0], rl[:, 1], beta=0.1).mean())
    assert abs(ours - trl_loss) < 1e-5
    assert abs(trl_loss - 0.6931) > 1e-3  # different policy and reference: a non-trivial loss


def test_precomputed_reference_equals_adapter_disabled_reference(tmp_path):
    recs = make_records(4)
    losses = []
    for precompute in (True, False):
        model, tok = tiny_llama(seed=0)
        trainer = PreferenceTrainer(model, args(tmp_path, num_strong=2, num_weak=2, precompute_ref_log_probs=precompute),
                                    recs, tok, peft_config=LoraConfig(**LORA, init_lora_weights=False))
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
        assert ("reference_logps" in batch) == precompute
        with torch.no_grad():
            losses.append(float(trainer.compute_loss(trainer.model, batch)))
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)
    # random (non-zero) LoRA weights make the policy differ from the reference, so the loss is not log(1+w+...)
    assert abs(losses[0] - torch.log(torch.tensor(5.0)).item()) > 1e-4


def test_epa_lora_training_moves_rewards_and_logs(tmp_path):
    model, tok = tiny_llama(seed=0)
    trainer = PreferenceTrainer(model, args(tmp_path, num_strong=2, num_weak=2, max_steps=6, learning_rate=2e-2),
                                make_records(4), tok, peft_config=LoraConfig(**LORA))
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    for key in ("rewards/chosen", "rewards/rejected", "rewards/weak", "rewards/margins", "rewards/accuracies"):
        assert key in logs[0]
    assert logs[-1]["loss"] < logs[0]["loss"]
    assert logs[-1]["rewards/margins"] > logs[0]["rewards/margins"]


def test_full_finetuning_with_frozen_copy_reference(tmp_path):
    model, tok = tiny_llama(seed=0)
    trainer = PreferenceTrainer(model, args(tmp_path, method="dpo", max_steps=1, precompute_ref_log_probs=False),
                                make_records(4), tok)
    assert trainer.ref_model is not None and not any(p.requires_grad for p in trainer.ref_model.parameters())
    before = trainer.ref_model.model.embed_tokens.weight.clone()
    trainer.train()
    assert torch.equal(before, trainer.ref_model.model.embed_tokens.weight)
    assert not torch.equal(before, trainer.model.model.embed_tokens.weight)


@pytest.mark.slow
def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path):
    def run(out, max_steps, resume=None):
        model, tok = tiny_llama(seed=0)
        cfg = args(tmp_path, output_dir=str(out), max_steps=max_steps, save_strategy="steps", save_steps=1,
                   per_device_train_batch_size=2, num_strong=1, num_weak=1,
                   lr_scheduler_type="constant")
        trainer = PreferenceTrainer(model, cfg, make_records(4), tok, peft_config=LoraConfig(**LORA))
        trainer.train(resume_from_checkpoint=resume)
        return {k: v.detach().clone() for k, v in trainer.model.named_parameters() if "lora" in k}

    full = run(tmp_path / "full", 2)
    run(tmp_path / "part", 1)
    resumed = run(tmp_path / "part", 2, resume=str(tmp_path / "part" / "checkpoint-1"))
    for key in full:
        torch.testing.assert_close(resumed[key], full[key])


def test_nan_loss_is_a_user_error(tmp_path):
    from tunelab.errors import UserError

    model, tok = tiny_llama(seed=0)
    trainer = PreferenceTrainer(model, args(tmp_path, method="dpo"), make_records(4), tok, peft_config=LoraConfig(**LORA))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    with torch.no_grad():
        next(p for n, p in trainer.model.named_parameters() if "lora_B" in n).fill_(float("nan"))
        with pytest.raises(UserError, match="loss became nan"):
            trainer.compute_loss(trainer.model, batch)


def test_gradient_checkpointing_gives_the_same_update(tmp_path):
    """TRL's DPOConfig turns checkpointing on by default; with LoRA (frozen embeddings) it must still train, and
    recomputing activations in backward must not change the step."""
    updates = []
    for checkpointing in (False, True):
        model, tok = tiny_llama(seed=0)
        trainer = PreferenceTrainer(model, args(tmp_path, num_weak=2, max_steps=1, learning_rate=5e-2,
                                                gradient_checkpointing=checkpointing),
                                    make_records(4), tok, peft_config=LoraConfig(**LORA, init_lora_weights=False))
        before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
        trainer.train()
        updates.append({n: p.detach() - before[n] for n, p in trainer.model.named_parameters() if n in before})
    assert sum(float(d.abs().sum()) for d in updates[1].values()) > 1.0  # the checkpointed run did train
    assert max(float((updates[0][n] - updates[1][n]).abs().max()) for n in updates[0]) < 1e-6
