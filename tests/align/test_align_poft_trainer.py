"""PoFTTrainer against references: SFT mode = transformers' own causal-LM loss, PoFT mode = the formula on unpadded
per-example scores; training, saving, resume, and the stale-scores refusal (tiny-llama)."""

import json

import pytest
import torch

from tunelab.align.poft.config import PoFTConfig
from tunelab.align.poft.loss import poft_loss
from tunelab.align.poft.scoring import AlignedScores, encode_example
from tunelab.align.poft.trainer import LoraSettings, make_trainer, train
from tunelab.errors import UserError
from tunelab.models import load_causal_lm

PAIRS = [("What is 2 + 3?", "5"), ("Convert 2 km to m.", "2000"), ("What is 7 * 8?", "56"),
         ("Say hi.", "hi there, friend")]
REFERENCE = [-1.0, -2.5, -0.5, -4.0]


def _scores(pairs=PAIRS, reference=REFERENCE):
    from tunelab.align.poft.loss import data_hash

    return AlignedScores(data_hash=data_hash(pairs), models=["fake"], per_model={"fake": list(reference)},
                         reference=list(reference))


def _trainer(tmp_path, loss_type, scores=None):
    model, tokenizer = load_causal_lm("tiny-llama", seed=0)
    config = PoFTConfig(output_dir=str(tmp_path), loss_type=loss_type, per_device_train_batch_size=4, use_cpu=True,
                        beta=2.0, gamma=0.1)
    return make_trainer(model, tokenizer, PAIRS, scores, config), model, tokenizer


def _batch(trainer):
    return next(iter(trainer.get_train_dataloader()))


def test_sft_mode_equals_transformers_causal_lm_loss(tmp_path):
    trainer, model, _ = _trainer(tmp_path, "sft")
    batch = _batch(trainer)
    with torch.no_grad():
        ours = trainer.compute_loss(model, dict(batch))
        labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)  # transformers' convention
        reference = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)


def test_poft_mode_equals_formula_on_unpadded_examples(tmp_path):
    trainer, model, tokenizer = _trainer(tmp_path, "poft", _scores())
    batch = _batch(trainer)
    with torch.no_grad():
        ours = trainer.compute_loss(model, dict(batch))
        s_theta, s_ref = [], []
        by_ids = {tuple(sum(encode_example(tokenizer, p, r), [])): i for i, (p, r) in enumerate(PAIRS)}
        for row in range(batch["input_ids"].shape[0]):
            length = int(batch["attention_mask"][row].sum())
            ids = batch["input_ids"][row, :length]
            scored = batch["completion_mask"][row, :length]
            logp = torch.log_softmax(model(input_ids=ids[None]).logits[0].double(), -1)
            terms = [logp[t - 1, ids[t]] for t in range(1, length) if scored[t]]
            s_theta.append(torch.stack(terms).mean())
            s_ref.append(REFERENCE[by_ids[tuple(ids.tolist())]])  # the shuffled batch keeps each example's score
        expected = poft_loss(torch.stack(s_theta), torch.tensor(s_ref, dtype=torch.float64), 2.0, 0.1).mean()
    assert ours.item() == pytest.approx(expected.item(), rel=1e-5)


def test_stale_scores_are_refused(tmp_path):
    stale = _scores(PAIRS[:-1] + [("Say hi.", "hello")])
    with pytest.raises(UserError, match="computed for other data"):
        _trainer(tmp_path, "poft", stale)
    with pytest.raises(UserError, match="needs reference scores"):
        _trainer(tmp_path, "poft", None)


@pytest.mark.slow
def test_train_saves_and_resumes(tmp_path):
    records = [{"prompt": p, "response": r} for p, r in PAIRS]

    def config(max_steps):
        return PoFTConfig(output_dir=str(tmp_path / "ckpt"), max_steps=max_steps, per_device_train_batch_size=2,
                          learning_rate=1e-3, save_steps=1, logging_steps=1, use_cpu=True, disable_tqdm=True)

    first = train(records, "tiny-llama", config(2), _scores(), LoraSettings(r=4, alpha=8), save_to=tmp_path / "m1")
    assert first["steps"] == 2 and first["resumed_from"] is None
    assert (tmp_path / "m1" / "adapter_model.safetensors").is_file()
    assert json.loads((tmp_path / "m1" / "poft_summary.json").read_text())["loss_type"] == "poft"
    second = train(records, "tiny-llama", config(3), _scores(), LoraSettings(r=4, alpha=8), resume=True)
    assert second["resumed_from"].endswith("checkpoint-2") and second["steps"] == 3


def _zip_bytes() -> bytes:
    """An empty zip archive: what resume accepts as a torch.save file that was not cut short."""
    import io
    import zipfile

    buffer = io.BytesIO()
    zipfile.ZipFile(buffer, "w").close()
    return buffer.getvalue()


@pytest.mark.parametrize("stray", [False, True])
def test_train_resumes_from_highest_numbered_checkpoint(tmp_path, monkeypatch, stray):
    import types

    from tunelab.align.poft import trainer as poft_train

    for name in ["checkpoint-2", "checkpoint-10", "checkpoint-100"] + (["checkpoint-abc"] if stray else []):
        (tmp_path / name).mkdir()  # complete as far as resume checks: state and (empty) weights
        (tmp_path / name / "trainer_state.json").write_text("{}")
        (tmp_path / name / "adapter_model.bin").write_bytes(_zip_bytes())
    resumed = []

    def fake_train(resume_from_checkpoint=None):
        resumed.append(resume_from_checkpoint)
        return types.SimpleNamespace(global_step=0, training_loss=0.0)

    monkeypatch.setattr(poft_train, "load_target", lambda *a, **k: (None, None))
    monkeypatch.setattr(poft_train, "make_trainer", lambda *a, **k: types.SimpleNamespace(
        train=fake_train, state=types.SimpleNamespace(log_history=[])))
    config = PoFTConfig(output_dir=str(tmp_path), loss_type="sft", use_cpu=True)
    summary = train([{"prompt": p, "response": r} for p, r in PAIRS], "fake", config, lora=None, resume=True)
    assert resumed == [str(tmp_path / "checkpoint-100")] == [summary["resumed_from"]]
