"""The PoFT scoring step: s_ref for every SFT example from K aligned models, computed once before training.

Each aligned model scores every (prompt, response) with its own tokenizer and chat template (mean log-probability
per response token). Scores are cached per model in an append-only JSONL file keyed by the model's identity, its
chat template and max_length; each line is keyed by the example's content hash. So:

* an interrupted run resumes where it stopped (finished batches are on disk), and
* edited data can never reuse a stale score (a changed example has a new key and gets scored again).

The result is an `AlignedScores` file carrying the hash of the whole ordered dataset; the trainer refuses it for any
other data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Sequence

import torch

from tunelab.align.poft.loss import data_hash, example_key, masked_mean, model_token_logprobs, reference_score
from tunelab.align.chat import encode_pair, pad_id_of, pad_sequences
from tunelab.errors import UserError
from tunelab.io import atomic_write_json

SCORING_VERSION = 2  # 2: the shared align.chat split; bump when the score's definition changes: old caches then no longer match


@dataclasses.dataclass
class AlignedScores:
    """Reference scores for one ordered dataset: per aligned model and their mean s_ref."""

    data_hash: str
    models: list[str]
    per_model: dict[str, list[float]]
    reference: list[float]
    examples_per_second: dict[str, float | None] = dataclasses.field(default_factory=dict)  # None: all from cache

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, dataclasses.asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> "AlignedScores":
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
            return cls(**raw)
        except FileNotFoundError:
            raise UserError(f"scores file {path} does not exist: run `tunelab align poft score` first") from None
        except (ValueError, TypeError) as err:
            raise UserError(f"scores file {path} is not a PoFT scores file ({type(err).__name__}): score again") from None

    def check_matches(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Refuse scores computed for other data (edited, reordered, or a different file)."""
        if self.data_hash != data_hash(pairs) or len(self.reference) != len(pairs):
            raise UserError(f"the reference scores were computed for other data ({len(self.reference)} examples, hash "
                            f"{self.data_hash[:12]}) than the {len(pairs)} examples given (hash {data_hash(pairs)[:12]}): "
                            f"score this data again with `tunelab align poft score`")


# --------------------------------------------------------------------------- model identity and cache

def model_identity(name_or_path: str) -> str:
    """What makes an aligned model's scores reusable: its name, or a local folder's config and weight files."""
    path = Path(name_or_path)
    if not path.is_dir():
        return name_or_path
    digest = hashlib.sha256()
    for file in sorted(path.iterdir()):
        if file.suffix in (".json", ".safetensors", ".bin", ".gguf", ".model") and file.is_file():
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
            if file.name == "config.json":
                digest.update(file.read_bytes())
    return f"{path.resolve()}#{digest.hexdigest()[:16]}"


def cache_file(cache_dir: str | Path, name_or_path: str, tokenizer, max_length: int) -> tuple[Path, dict]:
    """The cache file of one aligned model and the header it must carry."""
    header = {"model": model_identity(name_or_path), "scoring_version": SCORING_VERSION, "max_length": max_length,
              "chat_template": hashlib.sha256(str(getattr(tokenizer, "chat_template", "")).encode()).hexdigest()}
    key = hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()[:16]
    slug = "".join(c if c.isalnum() or c in "-._" else "_" for c in Path(name_or_path).name)[:60]
    return Path(cache_dir) / f"{slug}-{key}.jsonl", header


def read_cache(path: Path, header: dict) -> dict[str, float]:
    """Cached scores by example key. A torn last line (interrupted write) is dropped; anything else is an error."""
    if not path.is_file():
        return {}
    lines = path.read_text().splitlines()
    try:
        found = json.loads(lines[0]) if lines else None
    except ValueError:
        found = None
    if found != {"header": header}:
        raise UserError(f"score cache {path} was written for another model, template or version: delete it")
    scores = {}
    for number, line in enumerate(lines[1:], start=2):
        try:
            entry = json.loads(line)
            scores[entry["key"]] = float(entry["score"])
        except (ValueError, KeyError, TypeError):
            if number == len(lines):
                break  # interrupted mid-write: that batch is simply scored again
            raise UserError(f"score cache {path} is corrupt at line {number}: delete it and score again") from None
    return scores


def append_cache(path: Path, header: dict, entries: list[tuple[str, float]]) -> None:
    new = not path.is_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        if new:
            handle.write(json.dumps({"header": header}) + "\n")
        elif path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            handle.write("\n")  # seal a torn line so new entries start cleanly
        handle.writelines(json.dumps({"key": k, "score": s}) + "\n" for k, s in entries)
        handle.flush()


# --------------------------------------------------------------------------- encoding

def encode_example(tokenizer, prompt: str, response: str, max_length: int = 512) -> tuple[list[int], list[int]]:
    """(prompt_ids, response_ids) of one SFT example under the model's own chat template: the response is what the
    model itself would emit as the assistant turn (its text and end-of-turn token, without trailing layout)."""
    return encode_pair(tokenizer, prompt, response, max_length, trailing_layout=False)


def pad_examples(features: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """align.chat's padded batch of the examples, carrying reference_score when present."""
    batch = pad_sequences([f["prompt_ids"] for f in features], [f["response_ids"] for f in features], pad_token_id)
    if "reference_score" in features[0]:
        batch["reference_score"] = torch.tensor([float(f["reference_score"]) for f in features], dtype=torch.float32)
    return batch


# --------------------------------------------------------------------------- scoring

def load_aligned(name_or_path: str):
    """(model, tokenizer) of an aligned model, with every load failure as one line."""
    from tunelab.models.lora import load_for_training

    model, tokenizer = load_for_training(name_or_path, role="aligned model")
    return model.eval(), tokenizer


@torch.no_grad()
def score_pairs(model, tokenizer, pairs: Sequence[tuple[str, str]], batch_size: int = 16, max_length: int = 512,
                on_batch=None) -> list[float]:
    """Mean response-token log-probability of each pair under `model` (batches sorted by length to cut padding).

    `on_batch(indices, scores)` is called after every batch (used for caching and progress).
    """
    encoded = [encode_example(tokenizer, p, r, max_length) for p, r in pairs]
    order = sorted(range(len(pairs)), key=lambda i: len(encoded[i][0]) + len(encoded[i][1]))
    pad_id = pad_id_of(tokenizer)
    scores: list[float] = [0.0] * len(pairs)
    model.eval()
    for start in range(0, len(order), batch_size):
        indices = order[start:start + batch_size]
        batch = pad_examples([{"prompt_ids": encoded[i][0], "response_ids": encoded[i][1]} for i in indices], pad_id)
        device = next(model.parameters()).device
        logprobs, mask = model_token_logprobs(model, *(batch[k].to(device) for k in ("input_ids", "attention_mask",
                                                                                   "completion_mask")))
        batch_scores = masked_mean(logprobs, mask).tolist()
        for i, s in zip(indices, batch_scores):
            scores[i] = s
        if on_batch is not None:
            on_batch(indices, batch_scores)
    return scores


def score_with_model(name_or_path: str, pairs: Sequence[tuple[str, str]], cache_dir: str | Path,
                     batch_size: int = 16, max_length: int = 512, loaded=None) -> tuple[list[float], float | None]:
    """Scores of all pairs under one aligned model, from its cache where possible; (scores, examples/s or None).

    The model itself is loaded only when some example is not cached yet. `loaded` = (model, tokenizer) skips loading.
    """
    from tunelab.models import load_tokenizer
    from tunelab.progress import progress_bar

    if loaded is not None:
        tokenizer = loaded[1]
    else:
        try:
            tokenizer = load_tokenizer(name_or_path)
        except Exception as err:  # noqa: BLE001
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise UserError(f"aligned model '{name_or_path}' cannot be loaded: {first}") from None
    path, header = cache_file(cache_dir, name_or_path, tokenizer, max_length)
    cached = read_cache(path, header)
    keys = [example_key(p, r) for p, r in pairs]
    missing = sorted({k: i for i, k in reversed(list(enumerate(keys))) if k not in cached}.values())
    throughput = None
    if missing:
        model, tokenizer = loaded if loaded is not None else load_aligned(name_or_path)
        todo = [pairs[i] for i in missing]
        with progress_bar() as bar:
            task = bar.add_task(f"scoring with {Path(name_or_path).name}", total=len(todo))

            def save(indices, batch_scores):
                entries = [(keys[missing[i]], s) for i, s in zip(indices, batch_scores)]
                append_cache(path, header, entries)
                cached.update(entries)
                bar.advance(task, len(indices))

            start = time.perf_counter()
            score_pairs(model, tokenizer, todo, batch_size, max_length, on_batch=save)
            throughput = len(todo) / (time.perf_counter() - start)
    return [cached[k] for k in keys], throughput


def score_dataset(pairs: Sequence[tuple[str, str]], aligned_models: Sequence[str], cache_dir: str | Path,
                  batch_size: int = 16, max_length: int = 512) -> AlignedScores:
    """s_ref for every pair: the mean over `aligned_models` of each one's own mean-token log-probability."""
    if not aligned_models:
        raise UserError("give at least one aligned model (--aligned-model NAME)")
    per_model, speed = {}, {}
    for name in aligned_models:
        per_model[name], speed[name] = score_with_model(name, pairs, cache_dir, batch_size, max_length)
    return AlignedScores(data_hash=data_hash(pairs), models=list(aligned_models), per_model=per_model,
                         reference=reference_score(list(per_model.values())), examples_per_second=speed)
