"""The enumerable study's configuration and method specs (no torch: the CLI builds its options from these fields)."""

from __future__ import annotations

import dataclasses

from tunelab.errors import UserError

WEAK_RULES = ("uniform", "other")  # weak negatives uniform over the response space, or other prompts' records
EXACT = 0  # the size that means "the exact expected loss"


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    loss: str  # dpo or epa
    nw: int = 0
    weak: str = "uniform"

    @property
    def label(self) -> str:
        return "dpo" if self.loss == "dpo" else f"epa(nw={self.nw},{self.weak})"


def parse_method(text: str) -> MethodSpec:
    """'dpo', 'epa:NW' or 'epa:NW:RULE' (RULE: uniform or other)."""
    parts = text.strip().split(":")
    if parts == ["dpo"]:
        return MethodSpec("dpo")
    if parts[0] != "epa" or not 2 <= len(parts) <= 3 or not parts[1].isdigit():
        raise UserError(f"method '{text}': use dpo, epa:NW or epa:NW:RULE")
    rule = parts[2] if len(parts) == 3 else "uniform"
    if rule not in WEAK_RULES:
        raise UserError(f"method '{text}': weak rule must be one of {', '.join(WEAK_RULES)}")
    return MethodSpec("epa", int(parts[1]), rule)


@dataclasses.dataclass
class EnumerableConfig:
    """Defaults: the design of issue 19 (12 prompts x 27 responses, beta 1), sized for ~45 min on one core."""

    prompts: int = 12
    positions: int = 3
    tokens: int = 3
    reward_scale: float = dataclasses.field(default=1.0, metadata={"help": "std of r*(x, y)"})
    beta: float = 1.0
    w: float = dataclasses.field(default=1.0, metadata={"help": "EPA stabiliser inside the log"})
    methods: tuple[str, ...] = dataclasses.field(
        default=("dpo", "epa:4:uniform", "epa:16:uniform", "epa:16:other"),
        metadata={"help": "dpo, epa:NW or epa:NW:RULE (RULE: uniform or other), comma-separated"})
    sizes: tuple[int, ...] = dataclasses.field(
        default=(EXACT, 27, 108, 540), metadata={"help": "records per prompt N (K, 4K, 20K); 0 = exact expected loss"})
    seeds: tuple[int, ...] = dataclasses.field(
        default=(0, 1, 2, 3, 4), metadata={"help": "data seeds: task, reference LM and records"})
    inits: int = dataclasses.field(default=2, metadata={"help": "policy initialisations per (method, seed, size)"})
    weak_draws: int = dataclasses.field(default=32, metadata={"help": "weak-negative draws per (x, y), exact loss"})
    steps: int = dataclasses.field(default=1000, metadata={"help": "full-batch Adam steps (cosine schedule)"})
    learning_rate: float = 1e-2
    hidden: int = 32
    layers: int = 2
    heads: int = 4
    intermediate: int = 64
    logit_scale: float = dataclasses.field(  # the reference's distance from uniform
        default=1.0, metadata={"help": "std of a random LM's next-token logits"})

    def __post_init__(self):
        self.methods, self.sizes, self.seeds = tuple(self.methods), tuple(self.sizes), tuple(self.seeds)
        for m in self.methods:
            parse_method(m)
        if self.prompts < 2 or self.positions < 1 or self.tokens < 2:
            raise UserError("need prompts >= 2, positions >= 1 and tokens >= 2")
        if self.inits < 1 or self.steps < 1 or not self.seeds or not self.sizes or min(self.sizes) < 0:
            raise UserError("need inits >= 1, steps >= 1, at least one seed and sizes >= 0")
        if self.beta <= 0 or self.learning_rate <= 0 or self.weak_draws < 1:
            raise UserError("beta, learning_rate and weak_draws must be > 0")

    @property
    def shape(self):
        from tunelab.align.preference.enumerable_lm import LMShape

        return LMShape(self.hidden, self.layers, self.heads, self.intermediate, self.logit_scale)
