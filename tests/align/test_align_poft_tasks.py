"""The verifiable problems of the PoFT study: true answers, corruption and answer parsing."""

import re

import pytest

from tunelab.align.poft.tasks import TASKS, corrupt, is_correct, make_problems, parse_answer


@pytest.mark.parametrize("task", sorted(TASKS))
def test_answers_are_the_true_results(task):
    for problem in make_problems(40, seed=3, task=task):
        numbers = [int(x) for x in re.findall(r"\d+", problem["prompt"])]
        if problem["kind"] in ("times-table", "multiply"):
            assert problem["answer"] == numbers[0] * numbers[1]
        elif problem["kind"] in ("add", "add-working"):
            assert problem["answer"] == numbers[0] + numbers[1]
        elif problem["kind"] == "subtract":
            assert problem["answer"] == numbers[0] - numbers[1]
        if problem["kind"] == "add-working":
            assert problem["response"] == f"{numbers[0]} + {numbers[1]} = {problem['answer']}"
        else:
            assert problem["response"] == str(problem["answer"])


def test_times_table_is_single_digit_products():
    problems = make_problems(30, seed=0, task="times-table")
    assert len({p["prompt"] for p in problems}) == 30
    assert all(re.fullmatch(r"What is [2-9] \* [2-9]\? .*", p["prompt"]) for p in problems)


@pytest.mark.parametrize("task", ["times-table", "addition"])
def test_corruption_changes_exactly_the_chosen_fraction(task):
    problems = make_problems(20, seed=1, task=task)
    noisy = corrupt(problems, 0.4, seed=0)
    assert sum(r["corrupted"] for r in noisy) == 8
    for clean, row in zip(problems, noisy):
        assert is_correct(row["response"], clean["answer"]) != row["corrupted"]
        if task == "addition":  # the working is kept, only the result is wrong
            assert row["response"].rsplit("=", 1)[0] == clean["response"].rsplit("=", 1)[0]


@pytest.mark.parametrize("text, expected", [("12", 12), ("4 * 3 = 12", 12), ("1,234 apples", 1234),
                                            ("7 + 3 = 10 and 2", 10), ("49 - 8 = ", None), ("no number", None)])
def test_parse_answer(text, expected):
    assert parse_answer(text) == expected
