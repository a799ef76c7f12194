"""Verifiable SFT data for the noisy-data study: arithmetic and unit-conversion problems with checkable answers.

A response is corrupted by replacing its answer with a plausible wrong number (off by a small amount, or a digit
slip), the kind of error that format checks cannot catch but a model that can do the arithmetic can.
"""

from __future__ import annotations

import random
import re

INSTRUCTION = "Answer with the number only."
UNITS = [  # (from, to, factor)
    ("kilometres", "metres", 1000), ("metres", "centimetres", 100), ("kilograms", "grams", 1000),
    ("hours", "minutes", 60), ("minutes", "seconds", 60), ("litres", "millilitres", 1000), ("days", "hours", 24),
    ("weeks", "days", 7), ("dozens", "items", 12),
]
_NUMBER = re.compile(r"-?\d+")


TASKS = {  # problem families: "mixed" is hard for a 135M model; "times-table" is within its reach (about 1 in 4 right);
    # "addition" answers with its working ("34 + 7 = 41"), which the 135M target learns from a few dozen examples
    "mixed": ("add", "subtract", "multiply", "convert"),
    "times-table": ("times-table",),
    "addition": ("add-working",),
}


def make_problem(rng: random.Random, task: str = "mixed") -> dict:
    """One problem: {'prompt', 'response', 'answer', 'kind'}."""
    kind = rng.choice(TASKS[task])
    if kind == "add-working":  # two digits plus one, answered as an equation: 720 distinct problems
        a, b = rng.randint(10, 99), rng.randint(2, 9)
        return {"prompt": f"What is {a} + {b}?", "response": f"{a} + {b} = {a + b}", "answer": a + b, "kind": kind}
    if kind == "times-table":  # single-digit products
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        question, answer = f"What is {a} * {b}?", a * b
    elif kind == "add":
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        question, answer = f"What is {a} + {b}?", a + b
    elif kind == "subtract":
        a, b = rng.randint(20, 99), rng.randint(1, 19)
        question, answer = f"What is {a} - {b}?", a - b
    elif kind == "multiply":
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        question, answer = f"What is {a} * {b}?", a * b
    else:
        source, target, factor = rng.choice(UNITS)
        amount = rng.randint(2, 15)
        question, answer = f"How many {target} are in {amount} {source}?", amount * factor
    return {"prompt": f"{question} {INSTRUCTION}", "response": str(answer), "answer": answer, "kind": kind}


def make_problems(n: int, seed: int, exclude: set[str] | None = None, task: str = "mixed") -> list[dict]:
    """n distinct problems (distinct prompts, none in `exclude`), reproducible from `seed`."""
    rng, seen, problems = random.Random(seed), set(exclude or ()), []
    for _ in range(100 * n):
        problem = make_problem(rng, task)
        if problem["prompt"] not in seen:
            seen.add(problem["prompt"])
            problems.append(problem)
            if len(problems) == n:
                return problems
    raise ValueError(f"could not draw {n} distinct problems")


def wrong_answer(answer: int, rng: random.Random) -> int:
    """A plausible wrong answer: a small offset, or (for 2+ digits) two adjacent digits swapped."""
    digits = str(answer)
    if len(digits) >= 2 and rng.random() < 0.3:
        i = rng.randrange(len(digits) - 1)
        swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2:]
        if swapped != digits and not swapped.startswith("0"):
            return int(swapped)
    offset = rng.choice([-1, 1]) * rng.randint(1, max(3, abs(answer) // 10))
    return answer + offset if answer + offset >= 0 else answer + abs(offset)


def corrupt(problems: list[dict], fraction: float, seed: int) -> list[dict]:
    """Copies of `problems` with round(fraction * n) responses replaced by wrong answers; marks them 'corrupted'.

    Which problems are corrupted depends on `seed`, nested across fractions (the 20 % set is inside the 40 % set of
    the same seed); a problem's wrong answer depends on the problem only, so noise levels share their scores.
    """
    order = list(range(len(problems)))
    random.Random(seed).shuffle(order)
    chosen = set(order[:round(fraction * len(problems))])
    out = []
    for i, problem in enumerate(problems):
        row = dict(problem, corrupted=i in chosen)
        if i in chosen:  # responses end with their answer ("41" or "34 + 7 = 41"): only that number changes
            wrong = wrong_answer(problem["answer"], random.Random(problem["prompt"]))
            row["response"] = problem["response"].removesuffix(str(problem["answer"])) + str(wrong)
        out.append(row)
    return out


def parse_answer(text: str) -> int | None:
    """The answer in a generated text: the first integer after the last '=' if there is one ("4 * 3 = 12"), else the
    first integer ("12"); None if there is none."""
    text = text.replace(",", "")
    match = _NUMBER.search(text.rsplit("=", 1)[1] if "=" in text else text)
    return int(match.group()) if match else None


def is_correct(text: str, answer: int) -> bool:
    return parse_answer(text) == answer
