"""End to end against a real OpenAI-compatible server: `transformers serve` on 127.0.0.1 with a tiny model,
the agent talking to it through the `openai` client."""

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tunelab.text2sql.agent import Agent
from tunelab.text2sql.db import open_database
from tunelab.text2sql.llm import OpenAILLM
from tunelab.text2sql.tools import Toolbox

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tunelab.models import load_causal_lm

    folder = tmp_path_factory.mktemp("tiny-llama")
    model, tokenizer = load_causal_lm("tiny-llama")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    cli = Path(sys.executable).with_name("transformers")
    if not cli.exists():
        cli = shutil.which("transformers")
    port = _free_port()
    proc = subprocess.Popen([str(cli), "serve", str(folder), "--host", "127.0.0.1", "--port", str(port),
                             "--device", "cpu"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail("transformers serve did not come up")
                time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1", str(folder)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
def test_agent_runs_against_a_real_server(server, shop_path):
    base_url, model = server
    llm = OpenAILLM(model, base_url=base_url, timeout_s=60, max_retries=0)
    with open_database(shop_path) as db:
        box = Toolbox(db, encoder=None)
        traj = Agent(box, llm, max_turns=2, max_tokens=12).run("How many customers live in Lyon?")
        box.close()
    # a random tiny model answers nonsense: the loop must survive it and account the server's token usage
    assert traj.status in ("max_turns", "repetition", "invalid", "answered", "done")
    replies = [s for s in traj.steps if s.actor == "model"]
    assert replies and all(s.prompt_tokens > 0 for s in replies)
    assert replies[0].observation  # a corrective observation (or a tool result) was produced
