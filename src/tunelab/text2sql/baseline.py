"""The full-schema single-shot baseline: every CREATE TABLE in the prompt, one completion, one SQL query."""

from __future__ import annotations

import re

from tunelab.text2sql.evaluate import Prediction
from tunelab.text2sql.llm import LLM, LLMError
from tunelab.text2sql.prompts import full_schema_messages
from tunelab.text2sql.schema import Schema

CODE_BLOCK = re.compile(r"```(?:sql|SQL)?\s*(.*?)(?:```|$)", re.DOTALL)


def extract_sql(reply: str) -> str | None:
    """The SQL in a ```sql block, else the reply from its first SELECT/WITH; None when there is none."""
    match = CODE_BLOCK.search(reply)
    text = match.group(1) if match else reply
    start = re.search(r"\b(select|with)\b", text, re.IGNORECASE)
    if not start:
        return None
    sql = text[start.start():].strip()
    return sql.split(";")[0].strip() or None


def predict_full_schema(llm: LLM, schema: Schema, question: str, evidence: str = "", max_tokens: int = 256) -> Prediction:
    try:
        completion = llm.complete(full_schema_messages(schema, question, evidence), max_tokens=max_tokens)
    except LLMError as err:
        return Prediction(None, status=f"llm_error: {err}")
    return Prediction(extract_sql(completion.text), 1, completion.prompt_tokens, completion.completion_tokens,
                      completion.latency_s, "done")
