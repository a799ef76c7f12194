"""The demo's building blocks (the full demo runs the local Qwen model and is exercised by `tunelab demo`)."""

from tunelab.text2sql.agent import Agent
from tunelab.text2sql.db import open_database
from tunelab.text2sql.demo import ATTACKS, render_trajectory, safety_check
from tunelab.text2sql.llm import ScriptedLLM
from tunelab.text2sql.tools import Toolbox


def test_safety_check_refuses_every_attack(shop_path):
    report = safety_check(shop_path)
    assert report["unchanged"] and len(report["outcomes"]) == len(ATTACKS)
    assert all(kind in ("refused", "error", "timeout") for _, kind in report["outcomes"])


def test_render_trajectory_shows_every_turn(shop_path):
    with open_database(shop_path) as db:
        box = Toolbox(db, encoder=None)
        llm = ScriptedLLM(['Thought: t\nAction: ExecuteSQL("SELECT 0")', 'Action: ExecuteSQL("SELECT 1")'])
        traj = Agent(box, llm).run("q")
        box.close()
    text = render_trajectory(traj)
    assert "--- turn 1" in text and "--- turn 2" in text and "final SQL: SELECT 1" in text


def test_fallback_script_answers_both_demo_questions(shop_path):
    from tunelab.text2sql.demo import QUESTIONS, SCRIPT
    from tunelab.text2sql.evaluate import bird_match

    llm = ScriptedLLM(list(SCRIPT))
    with open_database(shop_path) as db:
        box = Toolbox(db, encoder=None)
        agent = Agent(box, llm)
        for question, gold in QUESTIONS:
            traj = agent.run(question)
            assert traj.status == "answered"
            assert bird_match(db.execute(traj.final_sql).rows, db.execute(gold).rows)
        box.close()


def test_full_demo_questions_have_answers_and_the_judge_can_say_no(shop_path):
    from tunelab.text2sql.demo import MORE_QUESTIONS, QUESTIONS, is_correct

    with open_database(shop_path) as db:
        for _, gold in QUESTIONS + MORE_QUESTIONS:
            assert db.execute(gold).rows and is_correct(db, gold, gold)
        assert not is_correct(db, "SELECT count(*) FROM orders", MORE_QUESTIONS[0][1])
        assert not is_correct(db, "SELECT no_such_column FROM orders", MORE_QUESTIONS[0][1])
        assert not is_correct(db, None, MORE_QUESTIONS[0][1])
