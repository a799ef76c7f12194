"""LLM backends: the local transformers backend (tiny random Llama) and the OpenAI client's error handling."""

import pytest

from tunelab.models import load_causal_lm
from tunelab.text2sql.llm import LLMError, OpenAILLM, StopOnText, TransformersLLM


@pytest.fixture(scope="module")
def tiny():
    return TransformersLLM("tiny-llama", model_and_tokenizer=load_causal_lm("tiny-llama"))


def test_transformers_backend_counts_tokens_and_is_greedy(tiny):
    messages = [{"role": "user", "content": "Say something."}]
    a = tiny.complete(messages, max_tokens=8)
    b = tiny.complete(messages, max_tokens=8)
    assert a.text == b.text  # temperature 0: deterministic
    assert a.prompt_tokens == tiny.count_prompt_tokens(messages) > 0
    assert 0 < a.completion_tokens <= 8


def test_stop_criterion_ignores_the_prompt(tiny):
    tok = tiny.tokenizer
    prompt = tok("line one\n", return_tensors="pt")["input_ids"]
    new = tok("Thought: a\nAction: b\nObservation", add_special_tokens=False, return_tensors="pt")["input_ids"]
    import torch

    crit = StopOnText(tok, prompt.shape[1], ["\nThought", "\nObservation"])
    first = torch.cat([prompt, new[:, :2]], dim=1)  # "\n" (prompt) + "Thought" (new) must not stop
    assert not bool(crit(first, None)[0])
    assert bool(crit(torch.cat([prompt, new], dim=1), None)[0])


def test_endpoint_down_is_one_line_llm_error():
    llm = OpenAILLM("m", base_url="http://127.0.0.1:9/v1", timeout_s=2, max_retries=0)
    with pytest.raises(LLMError, match="unreachable"):
        llm.complete([{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("body,status", [(b"this is not json", 200), (b'{"choices": []}', 200),
                                         (b'{"error": "boom"}', 500)])
def test_endpoint_answering_garbage_is_one_line_llm_error(body, status):
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        llm = OpenAILLM("m", base_url=f"http://127.0.0.1:{server.server_port}/v1", timeout_s=5, max_retries=0)
        with pytest.raises(LLMError) as err:
            llm.complete([{"role": "user", "content": "hi"}])
        assert "\n" not in str(err.value)
    finally:
        server.shutdown()


def test_kv_cache_reuse_gives_the_same_greedy_text():
    pair = load_causal_lm("tiny-llama", seed=3)
    fresh = TransformersLLM("tiny-llama", model_and_tokenizer=pair, reuse_cache=False)
    cached = TransformersLLM("tiny-llama", model_and_tokenizer=pair, reuse_cache=True)
    messages = [{"role": "system", "content": "You are a tool user."}, {"role": "user", "content": "Question: q"}]
    for turn in range(3):
        a = fresh.complete(messages, max_tokens=6)
        b = cached.complete(messages, max_tokens=6)
        assert a.text == b.text and a.prompt_tokens == b.prompt_tokens
        messages = messages + [{"role": "assistant", "content": a.text or "x"},
                               {"role": "user", "content": f"Observation: result {turn}"}]
    assert cached.reused_tokens > 0 and fresh.reused_tokens == 0
