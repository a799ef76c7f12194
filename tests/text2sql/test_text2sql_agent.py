"""The agent loop driven by a scripted LLM (deterministic replies): protocol, stops, corrections, trajectory."""

import json

import pytest

from tunelab.text2sql.actions import ActionError, parse_action, parse_tool_call
from tunelab.text2sql.agent import Agent, final_sql
from tunelab.text2sql.llm import Completion, LLMError, ScriptedLLM, cut_at_stop
from tunelab.text2sql.prompts import STOP_SEQUENCES, agent_messages, table_summary



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
    traj = Agent(toolbox, llm, on_step=steps.append).run("How many customers live in Lyon?")
    assert traj.status == "done" and len(steps) == 3
    assert traj.final_sql == "SELECT count(*) FROM customers WHERE city = 'Lyon '"
    assert toolbox.db.execute(traj.final_sql).rows == truth
    assert "customers.city = 'Lyon '" in traj.steps[0].observation
    assert "hallucinated" not in json.dumps(traj.messages)  # cut at the stop sequence
    assert llm.calls[1][-1]["content"].startswith("Observation: Values for 'lyon'")  # the LLM saw the observation
    data = json.loads(traj.to_json())
    assert data["turns"] == 3 and data["prompt_tokens"] > 0 and data["steps"][1]["action"]["name"] == "ExecuteSQL"


def test_malformed_reply_gets_a_corrective_observation(toolbox):
    llm = ScriptedLLM(["I think the answer is 42.", 'Action: os.system("ls")', "Action: ExecuteSQL(\"SELECT 1\")",
                       "Action: Done()"])
    traj = Agent(toolbox, llm).run("q")
    assert traj.status == "done"
    assert traj.steps[0].observation.startswith("Invalid action") and not traj.steps[0].ok
    assert traj.steps[1].observation.startswith("Invalid action")


def test_done_only_after_successful_execute(toolbox):
    llm = ScriptedLLM(["Action: Done()", 'Action: ExecuteSQL("SELECT nope FROM orders")', "Action: Done()",
                       'Action: ExecuteSQL("SELECT count(*) FROM orders")', "Action: Done()"])
    traj = Agent(toolbox, llm).run("q")
    assert "only after a successful ExecuteSQL" in traj.steps[0].observation
    assert "only after a successful ExecuteSQL" in traj.steps[2].observation
    assert "Check the stored values" in traj.steps[1].observation  # error -> retry hint
    assert traj.status == "done" and traj.final_sql == "SELECT count(*) FROM orders"


def test_stops_on_repetition_and_max_turns(toolbox):
    again = 'Action: SearchColumn("city")'
    traj = Agent(toolbox, ScriptedLLM([again, again, again])).run("q")
    assert traj.status == "repetition" and len(traj.steps) == 2
    many = [f'Action: SearchColumn("word {i}")' for i in range(20)]
    traj = Agent(toolbox, ScriptedLLM(many), max_turns=4).run("q")
    assert traj.status == "max_turns" and len(traj.steps) == 4 and traj.final_sql is None


def test_identical_invalid_replies_stop_as_repetition(toolbox):
    stuck = "Thought: The result is empty. I should check the values."
    traj = Agent(toolbox, ScriptedLLM([stuck, 'Action: SearchColumn("city")', stuck, stuck])).run("q")
    assert traj.status == "repetition" and len(traj.steps) == 3
    assert traj.steps[0].observation.startswith("Invalid action")
    assert traj.steps[2].observation.startswith("Repeated invalid reply")


def test_budget_stops_the_loop(toolbox):
    llm = ScriptedLLM([Completion('Action: SearchColumn("a")', 1, 1, 0.0)] * 3)
    traj = Agent(toolbox, llm, budget_s=0.0).run("q")
    assert traj.status == "budget" and not traj.steps


def test_llm_failure_ends_cleanly(toolbox):
    traj = Agent(toolbox, ScriptedLLM(['Action: ExecuteSQL("SELECT 1")', LLMError("endpoint down")])).run("q")
    assert traj.status == "llm_error" and "endpoint down" in traj.error and traj.final_sql == "SELECT 1"


def test_final_sql_skips_select_star_probes():
    assert final_sql(["SELECT count(*) FROM t", "select * from t limit 3"]) == "SELECT count(*) FROM t"
    assert final_sql(["SELECT * FROM t"]) is None


def test_native_tool_calling_protocol(toolbox):
    llm = ScriptedLLM([[("SearchValue", '{"query": "nice"}')], [("ExecuteSQL", '{"sql": "SELECT 2"}')],
                       "no tool call", [("Done", "{}")]])
    traj = Agent(toolbox, llm, protocol="tools").run("q")
    assert traj.status == "done" and traj.final_sql == "SELECT 2"
    assert "customers.city = 'Nice '" in traj.steps[0].observation
    assert traj.steps[2].observation.startswith("Invalid action")
    assert any(m["role"] == "tool" for m in traj.messages)
