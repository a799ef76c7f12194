"""Grammar-constrained decoding for local transformers models, with llguidance.

Why llguidance: it is the constrained decoder behind vLLM's, SGLang's and llama.cpp's grammar support, is
maintained, ships wheels with no dependencies, reads Lark grammars (readable, with regex terminals) and computes a
token mask in well under a millisecond on the CPU. xgrammar (also maintained, CPU kernels) requires triton, an FFI
runtime and pydantic on x86-64 Linux and takes EBNF; outlines and lm-format-enforcer are heavier; transformers-cfg
has had no release since 2024.

The mask is applied as a `LogitsProcessor`, so it works with `generate()` (greedy or sampled, batched rows each
with their own matcher). Once the grammar is complete only the end-of-turn token stays allowed.
"""

from __future__ import annotations

import functools


class GrammarUnavailable(RuntimeError):
    pass


@functools.lru_cache(maxsize=4)
def _ll_tokenizer(tokenizer):
    import llguidance.hf

    eos = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab() else None
    return llguidance.hf.from_tokenizer(tokenizer, eos_token=eos if isinstance(eos, int) else tokenizer.eos_token_id)


class GrammarLogitsProcessor:
    """Masks every token the Lark `grammar` cannot take next; one matcher per row of the batch."""

    def __init__(self, tokenizer, grammar: str, prompt_len: int, rows: int = 1):
        try:
            import llguidance
            import llguidance.torch
        except ImportError as err:
            raise GrammarUnavailable("constrained decoding needs llguidance: pip install 'tunelab[text2sql]'") from err
        self._torch = llguidance.torch
        ll_tokenizer = _ll_tokenizer(tokenizer)
        spec = llguidance.grammar_from("lark", grammar)
        problem = llguidance.LLMatcher.validate_grammar(spec, ll_tokenizer)
        if problem:
            raise ValueError(f"invalid action grammar: {problem}")
        self.matchers = [llguidance.LLMatcher(ll_tokenizer, spec) for _ in range(rows)]
        self.prompt_len = prompt_len
        self.vocab_size = ll_tokenizer.vocab_size
        self._bitmask = llguidance.torch.allocate_token_bitmask(rows, self.vocab_size)

    def __call__(self, input_ids, scores):
        import torch

        for row, matcher in enumerate(self.matchers):
            if input_ids.shape[1] > self.prompt_len and not matcher.is_stopped():
                matcher.consume_token(int(input_ids[row, -1]))
            self._torch.fill_next_token_bitmask(matcher, self._bitmask, row)
        width = min(scores.shape[1], self.vocab_size)
        masked = scores[:, :width].clone()
        self._torch.apply_token_bitmask_inplace(masked, self._bitmask[: scores.shape[0]])
        out = torch.full_like(scores, float("-inf"))
        out[:, :width] = masked
        return out

    def errors(self) -> list[str]:
        return [m.get_error() for m in self.matchers if m.is_error()]
