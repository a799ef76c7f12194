"""The Interactive-T2S loop: Thought / Action / Observation turns against the tools, logged as a trajectory.

Stops on Done (accepted only after a successful ExecuteSQL), after `max_turns`, on a repeated action (or the
same unparseable reply twice), at a wall-clock budget, or when the LLM itself fails. Malformed actions get a corrective observation. An empty, NULL,
zero or failing result gets a hint to check values and columns (at most `max_retries` times). The answer is
the last successfully executed SQL that is not a `SELECT *` probe.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time

from tunelab.text2sql.actions import Action, ActionError, parse_action, parse_tool_call, tool_schemas
from tunelab.text2sql.llm import LLM, LLMError
from tunelab.text2sql.prompts import STOP_SEQUENCES, agent_messages
from tunelab.text2sql.tools import Observation, Toolbox

PROBE = re.compile(r"^\s*select\s+\*\s+from\b", re.IGNORECASE)
RETRY_HINT = ("\nThe result is empty, NULL, 0 or an error. Check the stored values with SearchValue and the "
              "columns with SearchColumn, then try again.")


@dataclasses.dataclass
class Step:
    turn: int
    reply: str
    action: dict | None
    observation: str
    ok: bool
    prompt_tokens: int
    completion_tokens: int
    llm_s: float
    tool_s: float


@dataclasses.dataclass
class Trajectory:
    question: str
    database: str
    model: str
    protocol: str
    steps: list[Step] = dataclasses.field(default_factory=list)
    final_sql: str | None = None
    status: str = "running"  # done | max_turns | repetition | budget | llm_error
    error: str | None = None
    messages: list[dict] = dataclasses.field(default_factory=list)
    wall_s: float = 0.0

    @property
    def prompt_tokens(self) -> int:
        return sum(s.prompt_tokens for s in self.steps)

    @property
    def completion_tokens(self) -> int:
        return sum(s.completion_tokens for s in self.steps)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data.update(turns=len(self.steps), prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)


def is_empty_result(observation: Observation) -> bool:
    if not observation.ok or observation.result is None:
        return True
    rows = observation.result.rows
    return not rows or (len(rows) == 1 and all(v is None or v == 0 for v in rows[0]))


def final_sql(successful: list[str]) -> str | None:
    for sql in reversed(successful):
        if not PROBE.match(sql):
            return sql
    return None


class Agent:
    def __init__(self, toolbox: Toolbox, llm: LLM, max_turns: int = 12, budget_s: float = 300.0,
                 max_retries: int = 3, protocol: str = "text", max_tokens: int = 384, on_step=None):
        if protocol not in ("text", "tools"):
            raise ValueError("protocol is 'text' or 'tools'")
        self.toolbox, self.llm = toolbox, llm
        self.max_turns, self.budget_s, self.max_retries = max_turns, budget_s, max_retries
        self.protocol, self.max_tokens = protocol, max_tokens
        self.on_step = on_step  # called with each Step as it happens (the CLI prints it)

    def run(self, question: str, evidence: str = "") -> Trajectory:
        messages = agent_messages(self.toolbox.schema, question, evidence)
        traj = Trajectory(question, str(self.toolbox.db.path), getattr(self.llm, "name", "?"), self.protocol)
        successful: list[str] = []
        seen: set[str] = set()
        seen_invalid: set[str] = set()
        retries = 0
        start = time.perf_counter()
        for turn in range(1, self.max_turns + 1):
            if time.perf_counter() - start > self.budget_s:
                traj.status = "budget"
                break
            try:
                if self.protocol == "tools":
                    completion = self.llm.complete(messages, max_tokens=self.max_tokens, tools=tool_schemas())
                else:
                    completion = self.llm.complete(messages, stop=STOP_SEQUENCES, max_tokens=self.max_tokens)
            except LLMError as err:
                traj.status, traj.error = "llm_error", str(err)
                break
            action, call_id, problem = self._parse(completion)
            tool_start = time.perf_counter()
            stop_reason = None
            if problem is not None and completion.text.strip() in seen_invalid:
                # the same unparseable reply again: greedy decoding will keep repeating it
                observation = Observation("Repeated invalid reply: stopping.", ok=False)
                stop_reason = "repetition"
            elif problem is not None:
                seen_invalid.add(completion.text.strip())
                observation = Observation(f"Invalid action: {problem}", ok=False)
            elif action.key() in seen:
                observation = Observation("Repeated action: stopping.", ok=False)
                stop_reason = "repetition"
            elif action.name == "Done":
                if successful:
                    observation = Observation("Done.")
                    stop_reason = "done"
                else:
                    observation = Observation("Done is accepted only after a successful ExecuteSQL.", ok=False)
            else:
                seen.add(action.key())
                observation = self._call(action)
                if action.name == "ExecuteSQL":
                    if observation.ok:
                        successful.append(action.arguments["sql"])
                    if is_empty_result(observation) and retries < self.max_retries:
                        retries += 1
                        observation = dataclasses.replace(observation, text=observation.text + RETRY_HINT)
            step = Step(turn, completion.text, dataclasses.asdict(action) if action else None, observation.text,
                        observation.ok, completion.prompt_tokens, completion.completion_tokens, completion.latency_s,
                        time.perf_counter() - tool_start)
            traj.steps.append(step)
            if self.on_step:
                self.on_step(step)
            self._append(messages, completion, call_id, observation)
            if stop_reason:
                traj.status = stop_reason
                break
        else:
            traj.status = "max_turns"
        traj.final_sql = final_sql(successful)
        traj.messages = messages
        traj.wall_s = time.perf_counter() - start
        return traj

    def _parse(self, completion) -> tuple[Action | None, str | None, str | None]:
        try:
            if self.protocol == "tools":
                if not completion.tool_calls:
                    raise ActionError("call one of the tools (no tool call in the reply)")
                call = completion.tool_calls[0]
                return parse_tool_call(call.name, call.arguments), call.id, None
            return parse_action(completion.text), None, None
        except ActionError as err:
            call_id = completion.tool_calls[0].id if completion.tool_calls else None
            return None, call_id, str(err)

    def _call(self, action: Action) -> Observation:
        args = action.arguments
        try:
            if action.name == "SearchColumn":
                return self.toolbox.search_column(args["query"])
            if action.name == "SearchValue":
                return self.toolbox.search_value(args["query"], args.get("table"), args.get("column"))
            if action.name == "FindShortestPath":
                return self.toolbox.find_shortest_path(args["start"], args["end"])
            return self.toolbox.execute_sql(args["sql"])
        except TypeError as err:  # a list where a string was needed, and the like
            return Observation(f"Invalid arguments for {action.name}: {err}", ok=False)

    def _append(self, messages: list[dict], completion, call_id: str | None, observation: Observation) -> None:
        if self.protocol == "tools" and call_id is not None:
            call = completion.tool_calls[0]
            messages.append({"role": "assistant", "content": completion.text or None, "tool_calls": [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}]})
            messages.append({"role": "tool", "tool_call_id": call.id, "content": observation.text})
            return
        messages.append({"role": "assistant", "content": completion.text.strip() or "(empty reply)"})
        messages.append({"role": "user", "content": f"Observation: {observation.text}"})
