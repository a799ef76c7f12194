"""The action grammar (llguidance): what it accepts, what it refuses, and that constrained decoding of even a
random model always gives a reply the parser accepts."""

import pytest

from tunelab.text2sql.actions import parse_action
from tunelab.text2sql.grammar import action_grammar

llguidance = pytest.importorskip("llguidance")


@pytest.fixture(scope="module")
def tiny():
    from tunelab.models import load_causal_lm

    return load_causal_lm("tiny-llama")


def accepts(tokenizer, grammar: str, text: str) -> bool:
    import llguidance.hf

    from tunelab.text2sql.constrained import _ll_tokenizer

    matcher = llguidance.LLMatcher(_ll_tokenizer(tokenizer), llguidance.grammar_from("lark", grammar))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return matcher.try_consume_tokens(ids) == len(ids) and matcher.is_accepting() and not matcher.is_error()


def test_grammar_accepts_each_allowed_tool_and_refuses_the_rest(toolbox, tiny):
    _, tokenizer = tiny
    everything = action_grammar(toolbox.schema, ["SearchColumn", "SearchValue", "FindShortestPath", "ExecuteSQL"])
    good = ['Thought: find it\nAction: SearchColumn("customer city")',
            'Thought: how is it stored\nAction: SearchValue("Lyon", table="customers")',
            'Thought: join\nAction: FindShortestPath("orders", "customers")',
            "Thought: count\nAction: ExecuteSQL(\"SELECT count(*) FROM customers WHERE city = 'Lyon '\")",
            'Thought: quoted\nAction: ExecuteSQL("SELECT \\"name\\" FROM customers")']
    for text in good:
        assert accepts(tokenizer, everything, text), text
        assert parse_action(text).name in ("SearchColumn", "SearchValue", "FindShortestPath", "ExecuteSQL")
    bad = ['Thought: x\nAction: Done()',  # not allowed before SQL ran
           'Thought: x\nAction: FindShortestPath("orders", "nosuch")',  # not a table of this schema
           'Thought: x\nAction: SearchColumn("city", table="customers")',  # keyword of another tool
           'Thought: x\nAction: ExecuteSQL("DROP TABLE orders")',
           'Action: ExecuteSQL("SELECT 1")',  # no Thought
           'Thought: x\nAction: ExecuteSQL("SELECT 1")\nObservation: 1']
    for text in bad:
        assert not accepts(tokenizer, everything, text), text
    only_sql = action_grammar(toolbox.schema, ["ExecuteSQL"])
    assert not accepts(tokenizer, only_sql, 'Thought: x\nAction: SearchColumn("city")')
    done = action_grammar(toolbox.schema, ["Done", "ExecuteSQL"], thought_chars=5)
    assert accepts(tokenizer, done, "Thought: ok\nAction: Done()")
    assert not accepts(tokenizer, done, "Thought: far too long\nAction: Done()")


def test_grammar_rejects_unknown_tools(toolbox):
    with pytest.raises(ValueError):
        action_grammar(toolbox.schema, ["Eval"])
    with pytest.raises(ValueError):
        action_grammar(toolbox.schema, [])


def test_constrained_decoding_of_a_random_model_always_parses(toolbox, tiny):
    import torch

    from tunelab.text2sql.llm import TransformersLLM

    llm = TransformersLLM("tiny-llama", model_and_tokenizer=tiny, reuse_cache=False)
    messages = [{"role": "user", "content": "How many customers live in Lyon?"}]
    allowed = ["SearchValue", "FindShortestPath", "ExecuteSQL"]
    grammar = action_grammar(toolbox.schema, allowed, thought_chars=20)
    for seed in range(3):
        torch.manual_seed(seed)
        with torch.no_grad():  # perturb the random model so that each seed decodes differently
            tiny[0].lm_head.weight.add_(0.5 * torch.randn_like(tiny[0].lm_head.weight))
        reply = llm.complete(messages, max_tokens=400, grammar=grammar).text
        action = parse_action(reply)
        assert action.name in allowed, reply
    unconstrained = llm.complete(messages, max_tokens=30).text
    with pytest.raises(Exception):
        parse_action(unconstrained)
