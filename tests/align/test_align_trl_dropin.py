"""TRL drop-in: implicit-prompt and multi-turn data tokenised as TRL's DPOTrainer does, DPOConfig names, eval
metrics under TRL's names equal to a hand computation, loadable adapter base names, main-process-only output."""

from __future__ import annotations

import json

import pytest
import torch

from tunelab.align.preference.config import AlignConfig
from tunelab.align.preference.data import normalize_record, tokenize_group
from tunelab.cli import main
from tunelab.errors import UserError


def conversation(i: int, answer: str) -> list[dict]:
    """Two user turns and the assistant's answers: the last assistant turn differs between chosen and rejected."""
    return [{"role": "user", "content": f"Hello {i}"}, {"role": "assistant", "content": f"Hi {i}."},
            {"role": "user", "content": f"What is {i} plus one?"}, {"role": "assistant", "content": answer}]


def implicit_records(n: int, offset: int = 0) -> list[dict]:
    rows = []
    for i in range(offset, offset + n):
        chosen = conversation(i, f"It is {i + 1}.") + [{"role": "user", "content": "Sure?"},
                                                       {"role": "assistant", "content": "Yes."}]
        rows.append({"chosen": chosen, "rejected": conversation(i, f"Maybe {i * 7} or so.")})
    return rows


def test_implicit_prompt_is_trls_extract_prompt():
    from trl.data_utils import extract_prompt

    for record in implicit_records(2) + [{"chosen": "The sky is blue.", "rejected": "The sky is green."}]:
        want = extract_prompt(record)
        got = normalize_record(record)
        assert (got.prompt, got.chosen, got.rejected) == (want["prompt"], want["chosen"], [want["rejected"]])
    assert len(normalize_record(implicit_records(1)[0]).chosen) == 3  # a multi-turn completion stays whole


def test_multi_turn_tokens_equal_trls_dpotrainer(tmp_path):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from tunelab.models import tiny_llama

    model, tok = tiny_llama(seed=0)
    records = implicit_records(2)
    trl = DPOTrainer(model=model, ref_model=tiny_llama(seed=0)[0], processing_class=tok,
                     train_dataset=Dataset.from_list(records),
                     args=DPOConfig(output_dir=str(tmp_path / "trl"), report_to="none", use_cpu=True, max_length=None,
                                    bf16=False))
    for i, record in enumerate(records):
        group = tokenize_group(tok, normalize_record(record), 1, [], max_length=None)
        row = trl.train_dataset[i]
        assert group["prompt_ids"] == row["prompt_ids"]
        assert group["responses_ids"] == [row["chosen_ids"], row["rejected_ids"]]


@pytest.mark.parametrize("bad", [
    {"chosen": "Same text.", "rejected": "Other text."},  # no common start
    {"chosen": [{"role": "user", "content": "q"}], "rejected": "a string"},
])
def test_implicit_prompt_errors_are_one_line(bad):
    with pytest.raises(UserError, match="record 0"):
        normalize_record(bad)


def test_dpoconfig_names(tmp_path):
    kw = dict(output_dir=str(tmp_path), use_cpu=True)
    assert AlignConfig(**kw, loss_type="sigmoid").method == "dpo"
    assert AlignConfig(**kw, loss_type=["sigmoid"], beta=0.2, max_length=None).num_weak == 0
    assert AlignConfig(**kw).method == "epa"
    with pytest.raises(UserError, match="not supported"):
        AlignConfig(**kw, loss_type="hinge")
    with pytest.raises(UserError, match="means method 'dpo'"):
        AlignConfig(**kw, loss_type="sigmoid", method="epa")


def test_report_to_names():
    from tunelab.align.cli import report_targets

    assert report_targets("none") == "none" and report_targets("tensorboard, wandb") == ["tensorboard", "wandb"]
    with pytest.raises(UserError, match="unknown logger"):
        report_targets("tensorbored")


def test_adapter_names_the_model_as_given(tmp_path):
    from peft import LoraConfig, get_peft_model

    from tunelab.align.preference.trainer import name_base_model
    from tunelab.models import tiny_llama

    for given, want in (("HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"),
                        (str(tmp_path), str(tmp_path.resolve()))):
        model, _ = tiny_llama(seed=0)
        name_base_model(model, given)
        peft = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
        peft.save_pretrained(tmp_path / "adapter")
        assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == want


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def hand_metrics(out, eval_rows, beta):
    """Eval rewards from scratch: the saved adapter on the base model, naive log_softmax over full logits."""
    from peft import PeftModel

    from tunelab.align.preference.trainer import _collate, prepare_groups
    from tunelab.models import tiny_llama

    base, tok = tiny_llama(seed=0)
    model = PeftModel.from_pretrained(base, str(out / "model")).eval()
    batch = _collate(prepare_groups(eval_rows, tok, AlignConfig(output_dir=str(out) + "-x", method="dpo",
                                                                use_cpu=True)), tok.pad_token_id)

    def logps():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        per_token = torch.log_softmax(logits, -1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
        return (per_token * batch["completion_mask"][:, 1:]).sum(-1).view(-1, 2)

    with torch.no_grad():
        policy = logps()
        with model.disable_adapter():
            reference = logps()
    rewards = beta * (policy - reference)
    chosen, rejected = rewards[:, 0], rewards[:, 1]
    return {"eval_rewards/chosen": chosen.mean(), "eval_rewards/rejected": rejected.mean(),
            "eval_rewards/margins": (chosen - rejected).mean(),
            "eval_rewards/accuracies": (chosen > rejected).float().mean(),
            "eval_logps/chosen": policy[:, 0].mean(), "eval_logps/rejected": policy[:, 1].mean(),
            "eval_loss": -torch.nn.functional.logsigmoid(chosen - rejected).mean()}


def test_trl_conversational_data_trains_with_eval_metrics(tmp_path, capsys):
    data = write_jsonl(tmp_path / "train.jsonl", implicit_records(4))
    eval_rows = implicit_records(4, offset=10)
    evaluation = write_jsonl(tmp_path / "eval.jsonl", eval_rows)
    out = tmp_path / "out"
    code = main(["align", "train", "--data", str(data), "--eval-data", str(evaluation), "--out", str(out),
                 "--model", "tiny-llama", "--method", "dpo", "--beta", "0.5", "--steps", "3", "--batch-size", "4",
                 "--lr", "5e-2", "--lora-r", "4", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    got = json.loads(captured.out)["eval"]
    want = hand_metrics(out, eval_rows, beta=0.5)
    for key, value in want.items():
        assert got[key] == pytest.approx(float(value), abs=1e-4), key
    assert abs(got["eval_rewards/margins"]) > 1e-3  # trained: the policy has left the reference
    adapter = json.loads((out / "model" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "tiny-llama"
    assert any("eval_rewards/margins" in h for h in json.loads((out / "log_history.json").read_text()))


def test_only_the_main_process_prints_and_writes(tmp_path, capsys, monkeypatch):
    from transformers import Trainer

    monkeypatch.setattr(Trainer, "is_world_process_zero", lambda self: False)
    data = write_jsonl(tmp_path / "train.jsonl", implicit_records(2))
    code = main(["align", "train", "--data", str(data), "--out", str(tmp_path / "out"), "--model", "tiny-llama",
                 "--method", "dpo", "--steps", "1", "--batch-size", "2", "--json"])
    assert code == 0 and capsys.readouterr().out == ""
    assert not (tmp_path / "out").exists()


def test_bad_report_to_is_one_line(tmp_path, capsys):
    data = write_jsonl(tmp_path / "train.jsonl", implicit_records(2))
    code = main(["align", "train", "--data", str(data), "--out", str(tmp_path / "out"), "--model", "tiny-llama",
                 "--report-to", "nope"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown logger" in err and len(err.strip().splitlines()) == 1
