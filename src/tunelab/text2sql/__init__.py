"""Interactive-T2S: a tool-using LLM agent that writes SQL step by step against a live, read-only database.

    >>> from tunelab.text2sql.db import open_database
    >>> from tunelab.text2sql.agent import Agent
    >>> from tunelab.text2sql.llm import TransformersLLM
    >>> with open_database("shop.sqlite") as db:
    ...     result = Agent(db, TransformersLLM()).run("How many customers live in Lyon?")
"""
