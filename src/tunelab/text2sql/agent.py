"""The Interactive-T2S loop: Thought / Action / Observation turns against the four tools, logged as a trajectory.

How it drives a small model (each part can be switched off in `AgentConfig`, and is measured by the benchmark):
- grounding: before the model's first SQL the controller runs SearchColumn, SearchValue and FindShortestPath on
  the question and shows their findings as a compact schema slice (`grounding.py`); those calls are steps too;
- constrained replies: with a local model every reply is decoded under the action grammar (`grammar.py`), which
  allows only the tools that make sense now: Done only after SQL returned rows, ExecuteSQL alone once the model
  has used its searches or repeated one;
- repairing feedback: the controller reruns a failing or empty ExecuteSQL rewritten (`rewrites.py`: another
  dialect's function, LIKE on a DATE, a missing join, a literal in the wrong column or spelled otherwise than
  stored...), and otherwise tells the model the closest names, the join path, the stored values (`repair.py`);
- no dead ends: a repeated action gets a corrective observation and the next reply is sampled instead of
  greedy (greedy decoding would write it again); the loop stops only after `max_repeats` of them;
- never empty-handed: the answer is the best query that ran (rows > no rows > error), whatever stopped the loop.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time

from tunelab.text2sql.actions import (Action, ActionError, parse_action, parse_json_call, parse_tool_call,
                                      tool_schemas)
from tunelab.text2sql.agent_config import AgentConfig
from tunelab.text2sql.grammar import action_grammar
from tunelab.text2sql.grounding import ground
from tunelab.text2sql.llm import LLM, LLMError
from tunelab.text2sql.prompts import STOP_SEQUENCES, agent_messages, compact_messages, table_summary
from tunelab.text2sql.repair import diagnose_empty, diagnose_error
from tunelab.text2sql.rewrites import repair_query
from tunelab.text2sql.tools import Observation, Toolbox

PROBE = re.compile(r"^\s*select\s+\*\s+from\b", re.IGNORECASE)
SEARCHES = ("SearchValue", "SearchColumn", "FindShortestPath")
RETRY_HINT = ("\nThe result is empty, NULL, 0 or an error. Check the stored values with SearchValue and the "
              "columns with SearchColumn, then try again.")
MAX_RETRY_HINTS = 3
MAX_REPAIR_ROUNDS = 3  # rewrite -> rerun -> rewrite the new error: a join added can make a name ambiguous


# Why the controller runs each tool before the model's first reply (a controller step's `reply`).
GROUNDING_REASONS = {
    "SearchColumn": "grounding: the columns closest to the question",
    "SearchValue": "grounding: where the question's phrases are stored",
    "FindShortestPath": "grounding: the join path between the tables found",
}


@dataclasses.dataclass
class Step:
    turn: int  # 0: the controller's grounding, before the model's first reply
    actor: str  # "model" or "controller"
    reply: str  # the model's text; for a controller step, why it acted (what a rewrite changed)
    action: dict | None
    observation: str
    ok: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_s: float = 0.0
    tool_s: float = 0.0
    call_format: str = ""  # tools protocol: "native" (the server's tool call) or "text" (read from the reply)


@dataclasses.dataclass
class Candidate:
    sql: str
    ok: bool
    has_rows: bool  # returned something other than no rows / one row of NULL or 0


@dataclasses.dataclass
class Trajectory:
    question: str
    database: str
    model: str
    protocol: str
    steps: list[Step] = dataclasses.field(default_factory=list)
    candidates: list[Candidate] = dataclasses.field(default_factory=list)
    final_sql: str | None = None
    status: str = "running"  # answered | done | max_turns | repetition | invalid | budget | llm_error
    error: str | None = None
    messages: list[dict] = dataclasses.field(default_factory=list)
    wall_s: float = 0.0

    @property
    def prompt_tokens(self) -> int:
        return sum(s.prompt_tokens for s in self.steps)

    @property
    def completion_tokens(self) -> int:
        return sum(s.completion_tokens for s in self.steps)

    @property
    def model_turns(self) -> int:
        return sum(s.actor == "model" for s in self.steps)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data.update(turns=self.model_turns, prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)


def one_line(err: BaseException, max_chars: int = 300) -> str:
    """An exception as the model reads it: its type and first line (a RecursionError's message is short, a
    traceback is never shown)."""
    text = " ".join(str(err).split())
    text = text if len(text) <= max_chars else text[:max_chars] + " ..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def is_empty_result(observation: Observation) -> bool:
    if not observation.ok or observation.result is None:
        return True
    rows = observation.result.rows
    return not rows or (len(rows) == 1 and all(v is None or v == 0 for v in rows[0]))


def best_candidate(candidates: list[Candidate]) -> str | None:
    """The last query that returned rows, else the last that ran, else the last tried; `SELECT *` probes last."""
    ranked = sorted(range(len(candidates)), key=lambda i: (candidates[i].has_rows, candidates[i].ok,
                                                           not PROBE.match(candidates[i].sql), i))
    return candidates[ranked[-1]].sql if candidates else None


@dataclasses.dataclass
class LoopState:
    seen: set = dataclasses.field(default_factory=set)
    searches: int = 0
    invalid_in_a_row: int = 0
    repeats: int = 0
    retry_hints: int = 0
    force_sql: bool = False
    sample_next: bool = False  # after a repetition: sample the next reply (greedy would repeat it)
    reminder: str = ""  # the grounding's join clause and conditions, repeated in a correction


class Agent:
    def __init__(self, toolbox: Toolbox, llm: LLM, config: AgentConfig | None = None, on_step=None, **overrides):
        self.toolbox, self.llm = toolbox, llm
        self.config = dataclasses.replace(config or AgentConfig(), **overrides)
        self.on_step = on_step  # called with each Step as it happens (the CLI prints it)

    # ------------------------------------------------------------------ the loop
    def run(self, question: str, evidence: str = "") -> Trajectory:
        cfg = self.config
        traj = Trajectory(question, self.toolbox.db.location, getattr(self.llm, "name", "?"), cfg.protocol)
        start = time.perf_counter()
        state = LoopState()
        messages = self._first_messages(traj, question, evidence, state)
        for turn in range(1, cfg.max_turns + 1):
            if cfg.budget_s is not None and time.perf_counter() - start > cfg.budget_s:
                traj.status = "budget"
                break
            allowed = self._allowed(traj, state)
            sampled, state.sample_next = state.sample_next, False
            try:
                completion = self._complete(messages, allowed, seed=turn if sampled else None)
            except LLMError as err:
                traj.status, traj.error = "llm_error", str(err)
                break
            action, call_id, problem = self._parse(completion, allowed)
            tool_start = time.perf_counter()
            try:
                observation, stop, extra = self._act(traj, state, action, problem)
            except Exception as err:  # noqa: BLE001 - the controller's own calls (repairs, hints): an observation
                observation, stop, extra = Observation(f"The controller failed: {one_line(err)}", ok=False), None, []
            call_format = "" if cfg.protocol != "tools" else "native" if completion.tool_calls else \
                "text" if action is not None else ""
            step = Step(turn, "model", completion.text, dataclasses.asdict(action) if action else None,
                        observation.text, observation.ok, completion.prompt_tokens, completion.completion_tokens,
                        completion.latency_s, time.perf_counter() - tool_start, call_format)
            self._record(traj, step)
            for why, tool_action, tool_observation in extra:
                self._record(traj, Step(turn, "controller", why, dataclasses.asdict(tool_action),
                                        tool_observation.text, tool_observation.ok))
            self._append(messages, completion, call_id, action, observation, turn)
            if stop:
                traj.status = stop
                break
        else:
            traj.status = "max_turns"
        traj.final_sql = best_candidate(traj.candidates)
        traj.messages = messages
        traj.wall_s = time.perf_counter() - start
        return traj

    def _first_messages(self, traj: Trajectory, question: str, evidence: str, state: "LoopState") -> list[dict]:
        cfg, schema = self.config, self.toolbox.schema
        if cfg.style == "paper":
            return agent_messages(schema, question, evidence)
        if cfg.ground:
            tool_start = time.perf_counter()
            try:
                grounding = ground(self.toolbox, question)
            except Exception as err:  # noqa: BLE001 - no grounding, not no run: the model starts from the tables
                self._record(traj, Step(0, "controller", "grounding", None, f"Grounding failed: {one_line(err)}",
                                        False, tool_s=time.perf_counter() - tool_start))
                return compact_messages(schema, question, f"Tables:\n{table_summary(schema)}", evidence,
                                        example=cfg.example, protocol=cfg.protocol)
            each = (time.perf_counter() - tool_start) / max(len(grounding.steps), 1)
            for action, observation in grounding.steps:
                self._record(traj, Step(0, "controller", GROUNDING_REASONS.get(action.name, "grounding"),
                                        dataclasses.asdict(action), observation.text, observation.ok, tool_s=each))
            context = grounding.render(self.toolbox.db.quote_if_needed)
            state.reminder = grounding.reminder(self.toolbox.db.quote_if_needed)
        else:
            context = f"Tables:\n{table_summary(schema)}"
        return compact_messages(schema, question, context, evidence, example=cfg.example, protocol=cfg.protocol)

    def _allowed(self, traj: Trajectory, state: LoopState) -> list[str]:
        """The tools the next reply may call."""
        last = traj.candidates[-1] if traj.candidates else None
        if last is not None and last.has_rows:
            return ["Done", "ExecuteSQL"]
        allowed = ["ExecuteSQL"]
        if not state.force_sql and state.searches < self.config.max_model_searches:
            allowed += list(SEARCHES)
        if any(c.ok for c in traj.candidates):
            allowed.append("Done")
        return allowed

    def _act(self, traj: Trajectory, state: LoopState, action: Action | None, problem: str | None):
        """The observation for one reply, whether the loop stops (and why), and the controller's extra tool calls."""
        cfg = self.config
        if action is not None and action.key() in state.seen:
            state.repeats += 1
            if state.repeats > cfg.max_repeats:
                return Observation("Repeated action: stopping.", ok=False), "repetition", []
            state.force_sql, state.sample_next = True, True
            what = "ran this query" if action.name == "ExecuteSQL" else "did that"
            # a small model forgets the slice a few turns later: its join clause and conditions come back here
            hint = f" {state.reminder}" if state.reminder else ""
            return Observation(f"You {what} already. Write a different SQL query with ExecuteSQL.{hint}",
                               ok=False), None, []
        if problem is not None:
            state.invalid_in_a_row += 1
            stop = "invalid" if state.invalid_in_a_row >= 2 else None
            return Observation(f"Invalid action: {problem}", ok=False), stop, []
        state.invalid_in_a_row = 0
        if action.name == "Done":
            if any(c.ok for c in traj.candidates):
                return Observation("Done."), "done", []
            return Observation("Done is accepted only after a successful ExecuteSQL.", ok=False), None, []
        state.seen.add(action.key())
        observation = self._call(action)
        if action.name != "ExecuteSQL":
            state.searches += 1
            return observation, None, []
        sql = action.arguments["sql"]
        empty = is_empty_result(observation)
        traj.candidates.append(Candidate(sql, observation.ok, observation.ok and not empty))
        if not empty:
            if cfg.stop_on_answer:
                return observation, "answered", []
            return dataclasses.replace(observation, text=observation.text + "\nIf this answers the question, "
                                                                          "reply Done()."), None, []
        if cfg.repair:
            text, extra, answered = self._repair(traj, sql, observation)
            stop = "answered" if answered and cfg.stop_on_answer else None
            return dataclasses.replace(observation, text=text), stop, extra
        if state.retry_hints < MAX_RETRY_HINTS:
            state.retry_hints += 1
            return dataclasses.replace(observation, text=observation.text + RETRY_HINT), None, []
        return observation, None, []

    def _repair(self, traj: Trajectory, sql: str, observation: Observation):
        """The controller reruns the query rewritten (and the rewrite's own error rewritten again, a few rounds);
        if no rewrite returns rows, the tools' hints are added. Returns the observation's text, the controller's
        (why, action, observation) steps, and whether a rewrite answered."""
        steps, notes = [], []
        current, current_obs = sql, observation
        for _ in range(MAX_REPAIR_ROUNDS):
            rewrite = repair_query(self.toolbox, current, None if current_obs.ok else current_obs.text)
            if rewrite is None or any(c.sql == rewrite.sql for c in traj.candidates):
                break
            rerun = self.toolbox.execute_sql(rewrite.sql)
            why = "rewrite: " + "; ".join(rewrite.fixes)
            steps.append((why, Action("ExecuteSQL", {"sql": rewrite.sql}), rerun))
            has_rows = rerun.ok and not is_empty_result(rerun)
            traj.candidates.append(Candidate(rewrite.sql, rerun.ok, has_rows))
            notes.append(f"The controller {'; '.join(rewrite.fixes)}: {rewrite.sql}\n{rerun.text}")
            if has_rows:
                return "\n".join([observation.text, notes[-1]]), steps, True
            current, current_obs = rewrite.sql, rerun
        failed = not observation.ok
        hint, more = diagnose_error(self.toolbox, sql, observation.text) if failed else diagnose_empty(self.toolbox, sql)
        steps += [("hint", action, obs) for action, obs in more]
        text = "\n".join([observation.text] + notes[-1:] + ([hint] if hint else []))
        return text, steps, False

    def _record(self, traj: Trajectory, step: Step) -> None:
        traj.steps.append(step)
        if self.on_step:
            self.on_step(step)

    # ------------------------------------------------------------------ talking to the LLM
    def _complete(self, messages: list[dict], allowed: list[str], seed: int | None = None):
        """One reply: greedy, or sampled at `sample_temperature` with `seed` (reproducible) when a seed is given."""
        cfg = self.config
        sampling = {} if seed is None else {"temperature": cfg.sample_temperature, "seed": seed}
        if cfg.protocol == "tools":
            tools = [t for t in tool_schemas() if t["function"]["name"] in allowed]
            return self.llm.complete(messages, max_tokens=cfg.max_tokens, tools=tools, **sampling)
        grammar = None
        if cfg.constrain and getattr(self.llm, "supports_grammar", False):
            grammar = action_grammar(self.toolbox.schema, allowed, thought_chars=cfg.thought_chars)
        return self.llm.complete(messages, stop=STOP_SEQUENCES, max_tokens=cfg.max_tokens, grammar=grammar,
                                 **sampling)

    def _parse(self, completion, allowed: list[str]) -> tuple[Action | None, str | None, str | None]:
        call_id = completion.tool_calls[0].id if completion.tool_calls else None
        try:
            if self.config.protocol == "tools" and completion.tool_calls:
                call = completion.tool_calls[0]
                action = parse_tool_call(call.name, call.arguments)
            elif self.config.protocol == "tools":  # no tool call came back: read the call from the text
                action = self._text_fallback(completion.text)
            else:
                action = parse_action(completion.text)
        except ActionError as err:
            return None, call_id, str(err)
        except (RecursionError, ValueError) as err:  # e.g. arguments nested deeper than json can read
            return None, call_id, f"unreadable tool call ({one_line(err)})"
        if action.name not in allowed:  # the action is kept: repeating it is still a repetition
            return action, call_id, f"{action.name} is not possible now; call one of {', '.join(allowed)}"
        return action, call_id, None

    @staticmethod
    def _text_fallback(text: str) -> Action:
        """The JSON form of a tool call written as text, else the Thought/Action text protocol. A call that was
        found but is wrong keeps its own message (what is wrong), so the model can fix it."""
        try:
            return parse_json_call(text)
        except ActionError as err:
            if "no tool call" not in str(err):
                raise
        try:
            return parse_action(text)
        except ActionError:
            raise ActionError("call one of the tools (no tool call in the reply)") from None

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
        except Exception as err:  # noqa: BLE001 - the single dispatch: whatever a tool raises is an observation
            return Observation(f"{action.name} failed: {one_line(err)}", ok=False)

    def _append(self, messages: list[dict], completion, call_id: str | None, action: Action | None,
                observation: Observation, turn: int) -> None:
        """The reply and its observation into the history. With the tools protocol a call read from the text goes
        back as a native call too: the chat template then shows the model its own tool-call format (Qwen's
        `<tool_call>` tags) instead of reinforcing bare JSON."""
        if self.config.protocol == "tools" and (call_id is not None or action is not None):
            if call_id is not None:
                call = completion.tool_calls[0]
                name, arguments, text = call.name, call.arguments, completion.text or None
            else:
                call_id, name, arguments, text = f"text_{turn}", action.name, json.dumps(action.arguments), None
            messages.append({"role": "assistant", "content": text, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]})
            messages.append({"role": "tool", "tool_call_id": call_id, "content": observation.text})
            return
        messages.append({"role": "assistant", "content": completion.text.strip() or "(empty reply)"})
        messages.append({"role": "user", "content": f"Observation: {observation.text}"})
