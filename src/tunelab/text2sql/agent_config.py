"""Settings of the Interactive-T2S loop. The defaults drive a small local model; `AgentConfig.paper()` is the
paper's own setting (its full prompt with worked exemplars, the model plans every search), for large models."""

from __future__ import annotations

import dataclasses

STYLES = ("compact", "paper")
PROTOCOLS = ("text", "tools")


@dataclasses.dataclass
class AgentConfig:
    style: str = "compact"  # compact: short instructions + one worked turn; paper: the paper's prompt
    ground: bool = True  # the controller runs the tools on the question before the model's first SQL
    constrain: bool = True  # replies decoded under the action grammar where the backend can (local models)
    repair: bool = True  # failing / empty ExecuteSQL gets what the tools know (closest names, joins, stored values)
    stop_on_answer: bool = True  # a query that returns rows ends the loop (small models rarely improve on it)
    example: bool = True  # the compact prompt's worked turn
    max_turns: int = 6  # model replies per question
    max_model_searches: int = 1  # searches the model may make before it must write SQL (compact style)
    max_repeats: int = 2  # repeated actions answered with a correction (and a sampled reply) before the loop stops
    sample_temperature: float = 0.7  # for the reply after a repetition; every other reply is greedy
    thought_chars: int = 100  # the longest Thought the grammar lets through
    max_tokens: int = 200  # per reply
    protocol: str = "text"  # text: Thought/Action lines; tools: the server's native tool calling
    budget_s: float | None = None  # wall-clock cut per question; None: none (results then do not depend on load)

    def __post_init__(self):
        if self.style not in STYLES:
            raise ValueError(f"style is one of {STYLES}, got {self.style!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError("protocol is 'text' or 'tools'")
        if self.max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        if self.max_repeats < 0 or not self.sample_temperature > 0:
            raise ValueError("max_repeats must be >= 0 and sample_temperature > 0")

    @classmethod
    def paper(cls, **overrides) -> "AgentConfig":
        """The paper's loop: table-level start context, its exemplars, the model decides every tool call."""
        settings = dict(style="paper", ground=False, repair=False, stop_on_answer=False, max_turns=12,
                        max_model_searches=1_000, max_tokens=384)
        settings.update(overrides)
        return cls(**settings)
