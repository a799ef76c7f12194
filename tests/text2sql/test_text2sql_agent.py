"""The agent loop driven by a scripted LLM (deterministic replies): protocol, stops, corrections, trajectory."""

import json

import pytest

from tunelab.text2sql.actions import Action, ActionError, parse_action, parse_tool_call
from tunelab.text2sql.agent import Agent, Candidate, best_candidate
from tunelab.text2sql.agent_config import AgentConfig
from tunelab.text2sql.llm import Completion, LLMError, ScriptedLLM, cut_at_stop
from tunelab.text2sql.prompts import STOP_SEQUENCES, agent_messages, table_summary

PAPER = AgentConfig.paper()  # the paper's loop: the model plans every tool call from the table list


def test_parse_action_accepts_calls_and_rejects_code():
    assert parse_action('Thought: x\nAction: SearchValue("Lyon", table=["customers"])').arguments == \
        {"query": "Lyon", "table": ["customers"]}
    assert parse_action("Action: ExecuteSQL(SELECT count(*) FROM t)").arguments == {"sql": "SELECT count(*) FROM t"}
    assert parse_action('Action: `FindShortestPath("a", "b")` to join').name == "FindShortestPath"
    assert parse_action('Action: ExecuteSQL("""SELECT 1\nFROM t""")').arguments["sql"] == "SELECT 1\nFROM t"
    for bad in ['Action: __import__("os").system("rm -rf /")', 'Action: ExecuteSQL(open("/etc/passwd").read())',
                "Action: eval('1')", "Thought: no action here", 'Action: SearchColumn(query=x)',
                'Action: FindShortestPath("a")', 'Action: Done(1, 2)', 'Action: ExecuteSQL(sql=1+1)']:
        with pytest.raises(ActionError):
            parse_action(bad)
    assert parse_tool_call("ExecuteSQL", '{"sql": "SELECT 1"}').arguments == {"sql": "SELECT 1"}
    with pytest.raises(ActionError):
        parse_tool_call("system", "{}")
    with pytest.raises(ActionError):
        parse_tool_call("ExecuteSQL", "{not json")


def test_stop_sequences_cut_the_reply():
    assert cut_at_stop("Thought: a\nAction: Done()\nObservation: made up", STOP_SEQUENCES) == "Thought: a\nAction: Done()"


def test_start_context_has_no_column_list(toolbox):
    messages = agent_messages(toolbox.schema, "q")
    assert "| Table | Primary Key | Foreign Key | Row Count |" in messages[1]["content"]
    assert "vibration_pump_max" not in messages[1]["content"]
    assert "| customers | customer_id | customers.region_id -> regions.region_id | 200 |" in table_summary(toolbox.schema)


def test_full_trajectory_reaches_the_right_answer(toolbox):
    truth = toolbox.db.execute("SELECT count(*) FROM customers WHERE city = 'Lyon '").rows
    llm = ScriptedLLM([
        'Thought: find Lyon\nAction: SearchValue("lyon")\nObservation: hallucinated',
        "Thought: count\nAction: ExecuteSQL(\"SELECT count(*) FROM customers WHERE city = 'Lyon '\")",
        "Thought: done\nAction: Done()",
    ])
    steps = []
    traj = Agent(toolbox, llm, PAPER, on_step=steps.append).run("How many customers live in Lyon?")
    assert traj.status == "done" and len(steps) == 3
    assert traj.final_sql == "SELECT count(*) FROM customers WHERE city = 'Lyon '"
    assert toolbox.db.execute(traj.final_sql).rows == truth
    assert "customers.city = 'Lyon '" in traj.steps[0].observation
    assert "hallucinated" not in json.dumps(traj.messages)  # cut at the stop sequence
    assert llm.calls[1][-1]["content"].startswith("Observation: Values for 'lyon'")  # the LLM saw the observation
    data = json.loads(traj.to_json())
    assert data["turns"] == 3 and data["prompt_tokens"] > 0 and data["steps"][1]["action"]["name"] == "ExecuteSQL"


def test_malformed_reply_gets_a_corrective_observation(toolbox):
    llm = ScriptedLLM(["I think the answer is 42.", 'Action: SearchColumn("city")', 'Action: os.system("ls")',
                       "Action: ExecuteSQL(\"SELECT 1\")", "Action: Done()"])
    traj = Agent(toolbox, llm, PAPER).run("q")
    assert traj.status == "done"
    assert traj.steps[0].observation.startswith("Invalid action") and not traj.steps[0].ok
    assert traj.steps[2].observation.startswith("Invalid action")


def test_done_only_after_successful_execute(toolbox):
    llm = ScriptedLLM(["Action: Done()", 'Action: ExecuteSQL("SELECT nope FROM orders")', "Action: Done()",
                       'Action: ExecuteSQL("SELECT count(*) FROM orders")', "Action: Done()"])
    traj = Agent(toolbox, llm, PAPER).run("q")
    assert "Done is not possible now" in traj.steps[0].observation
    assert "Done is not possible now" in traj.steps[2].observation
    assert "Check the stored values" in traj.steps[1].observation  # error -> retry hint
    assert traj.status == "done" and traj.final_sql == "SELECT count(*) FROM orders"


def test_stops_on_repetition_and_max_turns(toolbox):
    again = 'Action: SearchColumn("city")'
    llm = ScriptedLLM([again] * 4)
    traj = Agent(toolbox, llm, PAPER).run("q")
    assert traj.status == "repetition" and len(traj.steps) == 4  # told off max_repeats = 2 times, then it stops
    assert "did that already" in traj.steps[1].observation and "did that already" in traj.steps[2].observation
    assert llm.temperatures == [None, None, 0.7, 0.7]  # after a repetition the reply is sampled, not greedy
    many = [f'Action: SearchColumn("word {i}")' for i in range(20)]
    traj = Agent(toolbox, ScriptedLLM(many), PAPER, max_turns=4).run("q")
    assert traj.status == "max_turns" and len(traj.steps) == 4 and traj.final_sql is None


def test_two_invalid_replies_in_a_row_stop(toolbox):
    stuck = "Thought: The result is empty. I should check the values."
    traj = Agent(toolbox, ScriptedLLM([stuck, 'Action: SearchColumn("city")', stuck, stuck]), PAPER).run("q")
    assert traj.status == "invalid" and len(traj.steps) == 4
    assert traj.steps[0].observation.startswith("Invalid action") and traj.steps[1].ok


def test_budget_stops_the_loop(toolbox):
    llm = ScriptedLLM([Completion('Action: SearchColumn("a")', 1, 1, 0.0)] * 3)
    traj = Agent(toolbox, llm, PAPER, budget_s=0.0).run("q")
    assert traj.status == "budget" and not traj.steps


def test_llm_failure_ends_cleanly(toolbox):
    traj = Agent(toolbox, ScriptedLLM(['Action: ExecuteSQL("SELECT 0")', LLMError("endpoint down")])).run("q")
    assert traj.status == "llm_error" and "endpoint down" in traj.error and traj.final_sql == "SELECT 0"


def test_best_candidate_prefers_rows_then_success_and_skips_probes():
    rows, empty, failed = (Candidate("SELECT a", True, True), Candidate("SELECT b", True, False),
                           Candidate("SELECT c", False, False))
    assert best_candidate([rows, empty, failed]) == "SELECT a"
    assert best_candidate([failed, empty]) == "SELECT b"
    assert best_candidate([failed]) == "SELECT c"  # never empty-handed once SQL was tried
    assert best_candidate([Candidate("SELECT count(*) FROM t", True, True),
                           Candidate("select * from t limit 3", True, True)]) == "SELECT count(*) FROM t"
    assert best_candidate([]) is None


def test_native_tool_calling_protocol(toolbox):
    llm = ScriptedLLM([[("SearchValue", '{"query": "nice"}')], [("ExecuteSQL", '{"sql": "SELECT 2"}')],
                       "no tool call", [("Done", "{}")]])
    traj = Agent(toolbox, llm, PAPER, protocol="tools").run("q")
    assert traj.status == "done" and traj.final_sql == "SELECT 2"
    assert "customers.city = 'Nice '" in traj.steps[0].observation
    assert traj.steps[2].observation.startswith("Invalid action")
    assert any(m["role"] == "tool" for m in traj.messages)


class GrammarAwareScript(ScriptedLLM):
    """A scripted LLM that says it can constrain decoding, so the agent hands it the grammar of each turn."""

    supports_grammar = True


def test_compact_loop_grounds_repairs_and_answers(toolbox):
    llm = GrammarAwareScript(["Thought: count\nAction: ExecuteSQL(\"SELECT count(*) FROM customers WHERE city = 'Lyon'\")"])
    steps = []
    traj = Agent(toolbox, llm, on_step=steps.append).run("How many customers live in Lyon?")
    truth = toolbox.db.execute("SELECT count(*) FROM customers WHERE city = 'Lyon '").rows
    assert traj.status == "answered" and toolbox.db.execute(traj.final_sql).rows == truth
    controller = [s for s in traj.steps if s.actor == "controller"]
    assert [s.action["name"] for s in controller if s.turn == 0][:2] == ["SearchColumn", "SearchValue"]
    assert "customers.city = 'Lyon '" in llm.calls[0][-1]["content"]  # the slice the model saw
    assert controller[-1].action == {"name": "ExecuteSQL", "arguments": {"sql": traj.final_sql}}  # the repair
    assert "The controller used the stored spelling 'Lyon '" in [s for s in traj.steps if s.actor == "model"][0].observation
    assert controller[-1].reply.startswith("rewrite: used the stored spelling")
    assert steps == traj.steps and traj.model_turns == 1
    # the first reply may not end the question: Done only once rows came back
    assert 'done: "Done()"' not in llm.grammars[0] and "execute_sql" in llm.grammars[0]
    data = json.loads(traj.to_json())
    assert data["turns"] == 1 and [c["has_rows"] for c in data["candidates"]] == [False, True]


def test_missing_join_is_added_by_the_controller(toolbox):
    llm = ScriptedLLM(["Thought: x\nAction: ExecuteSQL(\"SELECT count(*) FROM orders WHERE city = 'Nice '\")"])
    traj = Agent(toolbox, llm).run("How many orders were placed by customers from Nice?")
    gold = "SELECT count(*) FROM orders JOIN customers ON orders.customer_id = customers.customer_id WHERE city = 'Nice '"
    assert traj.status == "answered" and "JOIN customers" in traj.final_sql
    assert toolbox.db.execute(traj.final_sql).rows == toolbox.db.execute(gold).rows


def test_without_repair_the_error_is_only_reported(toolbox):
    llm = ScriptedLLM(["Thought: x\nAction: ExecuteSQL(\"SELECT count(*) FROM orders WHERE city = 'Nice '\")",
                       'Thought: y\nAction: ExecuteSQL("SELECT count(*) FROM orders")'])
    traj = Agent(toolbox, llm, repair=False).run("How many orders were placed by customers from Nice?")
    assert traj.final_sql == "SELECT count(*) FROM orders" and "Check the stored values" in traj.steps[-2].observation


def test_searches_are_capped_and_done_is_allowed_after_rows(toolbox):
    llm = GrammarAwareScript(['Thought: a\nAction: SearchColumn("city")',
                              'Thought: b\nAction: ExecuteSQL("SELECT count(*) FROM orders")',
                              "Thought: c\nAction: Done()"])
    traj = Agent(toolbox, llm, stop_on_answer=False).run("How many orders?")
    assert traj.status == "done" and traj.final_sql == "SELECT count(*) FROM orders"
    assert "search_column" in llm.grammars[0]
    assert "search_column" not in llm.grammars[1]  # one search used: SQL next
    assert 'done: "Done()"' in llm.grammars[2]


def test_repeated_sql_stops_with_the_best_query_that_ran(toolbox):
    empty = "Thought: x\nAction: ExecuteSQL(\"SELECT count(*) FROM customers WHERE city = 'Atlantis'\")"
    traj = Agent(toolbox, ScriptedLLM([empty] * 4)).run("How many customers live in Atlantis?")
    assert traj.status == "repetition" and traj.model_turns == 4
    assert traj.final_sql == "SELECT count(*) FROM customers WHERE city = 'Atlantis'"


def test_ungrounded_compact_prompt_shows_the_table_list(toolbox):
    llm = ScriptedLLM(['Thought: x\nAction: ExecuteSQL("SELECT count(*) FROM orders")'])
    traj = Agent(toolbox, llm, ground=False).run("How many orders?")
    assert traj.status == "answered" and not [s for s in traj.steps if s.actor == "controller"]
    assert "| Table | Primary Key |" in llm.calls[0][-1]["content"]


def test_config_rejects_bad_settings():
    with pytest.raises(ValueError):
        AgentConfig(style="huge")
    with pytest.raises(ValueError):
        AgentConfig(max_turns=0)


def test_tool_protocol_falls_back_to_the_text_protocol(toolbox):
    llm = ScriptedLLM(['Thought: x\nAction: ExecuteSQL("SELECT count(*) FROM orders")'])
    traj = Agent(toolbox, llm, protocol="tools").run("How many orders?")
    assert traj.status == "answered" and traj.final_sql == "SELECT count(*) FROM orders"
    call = traj.messages[-2]["tool_calls"][0]["function"]  # written back as the native call it stands for
    assert call == {"name": "ExecuteSQL", "arguments": '{"sql": "SELECT count(*) FROM orders"}'}


def test_tool_protocol_reads_a_json_call_written_as_text(toolbox):
    llm = ScriptedLLM(['```json\n{"name": "ExecuteSQL", "arguments": {"sql": "SELECT count(*) FROM orders"}}\n```'])
    traj = Agent(toolbox, llm, protocol="tools").run("How many orders?")
    assert traj.status == "answered" and traj.final_sql == "SELECT count(*) FROM orders"
    bad = ScriptedLLM(['{"name": "Eval", "arguments": {}}', "nothing"])
    assert Agent(toolbox, bad, protocol="tools").run("q").status == "invalid"


@pytest.mark.parametrize("reply", [
    '{"name": "ExecuteSQL", "arguments": {"sql": "SELECT 1"}}',
    '```json\n{\n  "name": "ExecuteSQL",\n  "arguments": {"sql": "SELECT 1"}\n}\n```',
    '<tool_call>\n{"name": "ExecuteSQL", "arguments": {"sql": "SELECT 1"}}\n</tool_call>',
    '<tool_call>{"name": "ExecuteSQL", "arguments": "{\\"sql\\": \\"SELECT 1\\"}"}',  # unclosed tag, string args
    '{"name": "ExecuteSQL", "arguments": {"sql": "SELECT 1"}}\n{"name": "Done", "arguments": {}}',  # run-on
    'I will run it. {"function": {"name": "ExecuteSQL", "parameters": {"sql": "SELECT 1"}}}',
])
def test_tool_calls_written_as_text_are_read(reply):
    from tunelab.text2sql.actions import parse_json_call

    assert parse_json_call(reply) == Action("ExecuteSQL", {"sql": "SELECT 1"})


def test_text_tool_call_drops_invented_arguments_and_goes_back_as_a_native_call(toolbox):
    from tunelab.text2sql.actions import parse_json_call

    call = parse_json_call('{"name": "SearchColumn", "arguments": {"query": "city", "table": "customers"}}')
    assert call == Action("SearchColumn", {"query": "city"})
    llm = ScriptedLLM(['{"name": "ExecuteSQL", "arguments": {"sql": "SELECT count(*) FROM orders"}}'])
    traj = Agent(toolbox, llm, protocol="tools").run("How many orders?")
    model = [s for s in traj.steps if s.actor == "model"]
    assert traj.status == "answered" and model[0].call_format == "text"
    assistant = [m for m in traj.messages if m["role"] == "assistant"][-1]
    assert assistant["tool_calls"][0]["function"]["name"] == "ExecuteSQL"
    assert traj.messages[-1]["role"] == "tool"


def test_a_repetition_is_corrected_with_the_slice_and_a_sampled_reply(toolbox):
    bad = 'Thought: x\nAction: ExecuteSQL("SELECT count(*) FROM orders WHERE town = 1")'
    good = "Thought: y\nAction: ExecuteSQL(\"SELECT count(*) FROM orders JOIN customers ON orders.customer_id = " \
           "customers.customer_id WHERE customers.city = 'Nice '\")"
    llm = GrammarAwareScript([bad, bad, good])
    traj = Agent(toolbox, llm).run("How many orders were placed by customers from Nice?")
    correction = [s for s in traj.steps if s.actor == "model"][1].observation
    assert "already" in correction and "Start from: FROM" in correction and "'Nice '" in correction
    assert llm.temperatures == [None, None, 0.7] and traj.status == "answered"
