"""One chat-LLM interface, three backends: any OpenAI-compatible endpoint (the `openai` client), a local
transformers model (default: the embedded Qwen2.5-Coder-0.5B-Instruct), and a scripted replay (tests, demos).

Every call returns a `Completion` with the text cut at the first stop sequence, token counts and latency.
Greedy decoding (temperature 0) by default.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from typing import Protocol

from tunelab.errors import UserError

DEFAULT_LOCAL_MODEL = "qwen2.5-coder-0.5b-instruct"


@functools.lru_cache(maxsize=1)
def cache_argument() -> str:
    """generate()'s name for a KV cache: `cache` from transformers 5.2x on, `past_key_values` before."""
    import transformers
    from packaging.version import Version

    return "cache" if Version(transformers.__version__) >= Version("5.20") else "past_key_values"



class LLMError(UserError):
    """The LLM could not answer (endpoint down, garbage response): the agent stops the question cleanly."""


@dataclasses.dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the server sent it


@dataclasses.dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    tool_calls: list[ToolCall] = dataclasses.field(default_factory=list)


class LLM(Protocol):
    """`grammar`: a Lark grammar the reply must follow, where the backend can constrain decoding
    (`supports_grammar`); other backends ignore it. `temperature` > 0 samples (reproducibly with `seed`, where the
    backend can); None or 0 decodes greedily."""

    name: str
    supports_tools: bool
    supports_grammar: bool

    def complete(self, messages: list[dict], stop: list[str] | None = None, max_tokens: int = 384,
                 tools: list[dict] | None = None, grammar: str | None = None, temperature: float | None = None,
                 seed: int | None = None) -> Completion: ...


def cut_at_stop(text: str, stop: list[str] | None) -> str:
    """Text up to (not including) the earliest stop sequence."""
    cut = len(text)
    for s in stop or []:
        at = text.find(s)
        if at != -1:
            cut = min(cut, at)
    return text[:cut]


# ============================================================================ OpenAI-compatible endpoint

class OpenAILLM:
    """Any OpenAI-compatible server. The key comes from `api_key_env` (default OPENAI_API_KEY; servers that
    need none accept any string)."""

    supports_tools = True
    supports_grammar = False

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 temperature: float = 0.0, timeout_s: float = 120.0, max_retries: int = 1):
        import openai

        self.name = model
        self.temperature = temperature
        self.client = openai.OpenAI(base_url=base_url, api_key=os.environ.get(api_key_env) or "not-needed",
                                    timeout=timeout_s, max_retries=max_retries)
        self.base_url = base_url or "the default OpenAI endpoint"
        self.send_tool_choice = True

    def _create(self, kwargs: dict):
        """One request; a server that refuses `tool_choice` is asked again without it (and never again with it)."""
        import openai

        try:
            return self.client.chat.completions.create(**kwargs)
        except openai.BadRequestError as err:
            if "tool_choice" not in kwargs or "tool" not in str(err).lower():
                raise
            self.send_tool_choice = False
            kwargs = {k: v for k, v in kwargs.items() if k != "tool_choice"}
            return self.client.chat.completions.create(**kwargs)

    def complete(self, messages, stop=None, max_tokens=384, tools=None, grammar=None, temperature=None,
                 seed=None) -> Completion:
        import openai

        kwargs = dict(model=self.name, messages=messages, max_tokens=max_tokens,
                      temperature=self.temperature if temperature is None else temperature)
        if seed is not None:
            kwargs["seed"] = seed
        if stop:
            kwargs["stop"] = stop[:4]  # the API accepts at most four
        if tools:
            kwargs["tools"] = tools
            if self.send_tool_choice:  # every agent turn calls a tool; vLLM then forces a call (structured output)
                kwargs["tool_choice"] = "required"
        start = time.perf_counter()
        try:
            response = self._create(kwargs)
        except openai.APIConnectionError as err:
            raise LLMError(f"LLM endpoint {self.base_url} is unreachable: {err}") from err
        except openai.APIStatusError as err:
            raise LLMError(f"LLM endpoint answered HTTP {err.status_code}: {str(err)[:200]}") from err
        except (openai.OpenAIError, ValueError, json.JSONDecodeError) as err:
            raise LLMError(f"LLM endpoint gave an unusable answer: {str(err)[:200]}") from err
        latency = time.perf_counter() - start
        try:
            choice = response.choices[0]
            message = choice.message
        except (AttributeError, IndexError, TypeError) as err:
            raise LLMError("LLM endpoint answered without any choice") from err
        calls = [ToolCall(c.id or f"call_{i}", c.function.name, c.function.arguments or "{}")
                 for i, c in enumerate(getattr(message, "tool_calls", None) or [])]
        usage = getattr(response, "usage", None)
        text = cut_at_stop(message.content or "", stop)
        return Completion(text=text, prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                          completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
                          latency_s=latency, tool_calls=calls)


# ============================================================================ local transformers model

class StopOnText:
    """Stop when a stop string appears in the NEW text only. (transformers' `stop_strings` also matches across the
    prompt boundary: the chat template ends with a newline, so "\nThought" would stop right after "Thought".)"""

    def __init__(self, tokenizer, prompt_len: int, stops: list[str]):
        self.tokenizer, self.prompt_len, self.stops = tokenizer, prompt_len, list(stops)

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        flags = [any(s in self.tokenizer.decode(row[self.prompt_len:], skip_special_tokens=True) for s in self.stops)
                 for row in input_ids]
        return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)


class TransformersLLM:
    """A local causal LM with its chat template; greedy decoding with stop strings.

    `reuse_cache`: an agent's prompts only grow (same instructions and exemplars, then earlier turns), so the KV
    cache of the previous call is cut to the longest common token prefix and reused: each turn prefills only
    its new tokens."""

    supports_tools = False
    supports_grammar = True

    def __init__(self, model: str = DEFAULT_LOCAL_MODEL, threads: int | None = None, seed: int = 0,
                 model_and_tokenizer=None, reuse_cache: bool = True):
        import torch

        from tunelab.models import load_causal_lm

        if threads:
            torch.set_num_threads(threads)
        self.name = model
        self.model, self.tokenizer = model_and_tokenizer or load_causal_lm(model, seed=seed)
        self.reuse_cache = reuse_cache
        self._cache = None
        self._cache_ids = None
        self.reused_tokens = 0  # prompt tokens served from the cache, summed over calls

    def _reusable_cache(self, ids):
        """The previous call's cache cut to the prefix it shares with `ids` (at least one token left to process)."""
        if self._cache is None or self._cache_ids is None:
            return None
        keep = min(common_prefix_length(self._cache_ids, ids), len(ids) - 1)
        if keep <= 0:
            self._cache = None
            return None
        surplus = self._cache.get_seq_length() - keep
        if surplus > 0:
            self._cache.crop(-surplus)  # transformers 5: a negative count removes that many tokens
        self.reused_tokens += keep
        return self._cache

    def prompt_ids(self, messages: list[dict]):
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                  return_dict=True)["input_ids"]

    def count_prompt_tokens(self, messages: list[dict]) -> int:
        return int(self.prompt_ids(messages).shape[1])

    def complete(self, messages, stop=None, max_tokens=384, tools=None, grammar=None, temperature=None,
                 seed=None) -> Completion:
        import torch

        from transformers import LogitsProcessorList, StoppingCriteriaList

        ids = self.prompt_ids(messages)
        start = time.perf_counter()
        criteria = StoppingCriteriaList([StopOnText(self.tokenizer, ids.shape[1], stop)] if stop else [])
        processors = LogitsProcessorList()
        if grammar is not None:
            from tunelab.text2sql.constrained import GrammarLogitsProcessor

            processors.append(GrammarLogitsProcessor(self.tokenizer, grammar, ids.shape[1]))
        past = self._reusable_cache(ids[0]) if self.reuse_cache else None
        cache_kwarg = {cache_argument(): past} if past is not None else {}
        sampling = dict(do_sample=True, temperature=temperature) if temperature else dict(do_sample=False)
        # a sampled reply draws from its own seeded generator state, leaving the caller's RNG as it was
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0 if seed is None else seed)
            result = self.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
                                         stopping_criteria=criteria, logits_processor=processors, **sampling,
                                         **cache_kwarg,
                                         pad_token_id=self.tokenizer.pad_token_id, return_dict_in_generate=True)
        out = result.sequences
        cache = result.get("cache") or result.get("past_key_values")
        if self.reuse_cache and cache is not None:
            self._cache = cache
            self._cache_ids = out[0, : self._cache.get_seq_length()].clone()
        new = out[0, ids.shape[1]:]
        text = cut_at_stop(self.tokenizer.decode(new, skip_special_tokens=True), stop)
        return Completion(text=text, prompt_tokens=int(ids.shape[1]), completion_tokens=int(new.shape[0]),
                          latency_s=time.perf_counter() - start)


def common_prefix_length(a, b) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    same = (a[:n] == b[:n]).tolist()
    return same.index(False) if False in same else n


# ============================================================================ scripted replay

class ScriptedLLM:
    """Replays fixed replies in order (deterministic tests and documented walkthroughs). Token counts are
    whitespace words, so they are comparable only between scripted runs."""

    supports_tools = True
    supports_grammar = False

    def __init__(self, replies: list, name: str = "scripted"):
        self.replies = list(replies)
        self.name = name
        self.calls: list[list[dict]] = []
        self.grammars: list[str | None] = []  # the grammar each call was asked to follow
        self.temperatures: list[float | None] = []  # None: greedy

    def complete(self, messages, stop=None, max_tokens=384, tools=None, grammar=None, temperature=None,
                 seed=None) -> Completion:
        self.calls.append([dict(m) for m in messages])
        self.grammars.append(grammar)
        self.temperatures.append(temperature)
        if not self.replies:
            raise LLMError("scripted LLM has no reply left")
        reply = self.replies.pop(0)
        prompt_words = sum(len(str(m.get("content") or "").split()) for m in messages)
        if isinstance(reply, Completion):
            return reply
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, list):  # native tool calls: [(name, arguments_json), ...]
            calls = [ToolCall(f"call_{i}", n, a) for i, (n, a) in enumerate(reply)]
            return Completion("", prompt_words, sum(len(a.split()) for _, a in reply), 0.0, calls)
        text = cut_at_stop(str(reply), stop)
        return Completion(text, prompt_words, len(text.split()), 0.0)


def make_llm(model: str = DEFAULT_LOCAL_MODEL, base_url: str | None = None, threads: int | None = None) -> LLM:
    """An endpoint client when `base_url` is given, otherwise a local transformers model."""
    if base_url:
        return OpenAILLM(model, base_url=base_url)
    return TransformersLLM(model, threads=threads)
