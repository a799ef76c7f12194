import json
import os

import pytest

from tunelab import models
from tunelab.cli import main
from tunelab.errors import UserError


def test_models_list_json_shows_all_embedded_installed(capsys):
    assert main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(models.EMBEDDED)
    assert all(r["installed"] and r["size_bytes"] > 10_000_000 for r in rows)


def test_unknown_model_is_one_line_exit_2(capsys):
    assert main(["models", "verify", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown model 'no-such-model'" in err


@pytest.mark.slow
def test_smollm2_generates_tokens():
    from tunelab.models.demo import generate

    text, n_tokens, _ = generate(models.SMOLLM2.name, "What is the capital of France?", max_new_tokens=8)
    assert n_tokens >= 5
    assert text.strip()


def test_tiny_llama_runs_with_chat_template():
    model, tokenizer = models.load_causal_lm(models.TINY_LLAMA)
    batch = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                          return_tensors="pt", return_dict=True)
    logits = model(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], len(tokenizer))


@pytest.mark.slow
def test_qwen_parts_assemble_to_the_published_hash():
    folder, filename = models.gguf_location(models.QWEN_CODER.name)
    path = folder / filename
    assert path.stat().st_size == models.QWEN_CODER.size
    assert models.sha256_file(path) == models.QWEN_CODER.sha256


def _copy_parts(tmp_path, flip_at=None):
    parts = models.part_files()
    copies = []
    for i, part in enumerate(parts):
        data = bytearray(part.read_bytes())
        if flip_at is not None and i == flip_at[0]:
            data[flip_at[1]] ^= 0xFF
        copy = tmp_path / part.name
        copy.write_bytes(bytes(data))
        copies.append(copy)
    return copies


@pytest.mark.slow
def test_a_part_with_one_flipped_byte_is_refused(tmp_path):
    parts = _copy_parts(tmp_path, flip_at=(3, 12345))
    target = tmp_path / "out" / "model.gguf"
    with pytest.raises(UserError) as info:
        models.assemble_parts(parts, target, models.QWEN_CODER.sha256, models.QWEN_CODER.size)
    assert "\n" not in str(info.value) and "sha256" in str(info.value)
    assert not target.exists()
    assert list((tmp_path / "out").iterdir()) == []  # no half-written file left behind


def test_assembly_checks_size_before_reading(tmp_path):
    parts = [tmp_path / "a.bin", tmp_path / "b.bin"]
    parts[0].write_bytes(b"abc")
    parts[1].write_bytes(b"de")
    with pytest.raises(UserError, match="add up to 5 bytes"):
        models.assemble_parts(parts, tmp_path / "m.gguf", "0" * 64, 6)


def test_valid_cached_assembly_is_reused_without_rehashing(tmp_path, monkeypatch):
    import hashlib

    parts = [tmp_path / "a.bin", tmp_path / "b.bin"]
    parts[0].write_bytes(b"hello ")
    parts[1].write_bytes(b"world")
    digest = hashlib.sha256(b"hello world").hexdigest()
    target = models.assemble_parts(parts, tmp_path / "m.gguf", digest, 11)
    assert target.read_bytes() == b"hello world"
    mtime = target.stat().st_mtime_ns
    monkeypatch.setattr(models, "sha256_file", lambda *a: pytest.fail("re-hashed a valid cache"))
    parts[0].unlink()  # re-assembly would fail: the cache must be used
    assert models.assemble_parts(parts, tmp_path / "m.gguf", digest, 11) == target
    assert target.stat().st_mtime_ns == mtime


def test_hub_name_while_offline_is_one_line_error(monkeypatch):
    import time

    from tunelab import hub

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    start = time.perf_counter()
    with pytest.raises(UserError, match="not reachable on a model hub") as info:
        models.load_encoder("some-org/some-model-that-is-not-here")
    assert "\n" not in str(info.value) and "HF_HUB_OFFLINE" in str(info.value)
    assert time.perf_counter() - start < 5  # at once, not after minutes of retries



def test_local_model_folder_loads(tmp_path):
    model, tokenizer = models.tiny_llama(layers=1, hidden=32, heads=2)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, _ = models.load_causal_lm(str(tmp_path))
    assert loaded.config.num_hidden_layers == 1


def test_sentence_encoder_embeds():
    encoder = models.load_sentence_encoder()
    vectors = encoder.encode(["a cat sat on the mat", "a kitten sat on a rug", "stock markets fell sharply"])
    assert vectors.shape == (3, 384)
    import numpy as np

    sims = vectors @ vectors.T / np.outer(np.linalg.norm(vectors, axis=1), np.linalg.norm(vectors, axis=1))
    assert sims[0, 1] > sims[0, 2]  # a real encoder, not random weights
