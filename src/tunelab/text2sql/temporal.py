"""Dates in a question, grounded like stored values: "in 1995", "in March 2024", "December 2001".

A year is no stored text value, so SearchValue cannot find it, and a small model then guesses (`o_orderdate LIKE
'1995%'` on a DATE, `YEAR()` on SQLite, a date column TPC-DS does not have). The controller instead writes the
filter in the database's own dialect, on the question's most relevant date column, or, where the tables keep
dates in a calendar dimension (TPC-DS's `date_dim` with `d_year`, `d_moy`), on that dimension's year and month.
"""

from __future__ import annotations

import dataclasses
import re

MONTHS = {m: i + 1 for i, m in enumerate(
    "january february march april may june july august september october november december".split())}
# "in 1995", "during the year 2001": a year said as the period asked about (not "before 1995", not "2000 units")
YEAR = re.compile(r"\b(?:in|during|of|for)\s+(?:the\s+)?(?:year\s+)?(1[89]\d{2}|20\d{2})\b(?!\s*[-/])",
                  re.IGNORECASE)
MONTH_YEAR = re.compile(r"\b(" + "|".join(MONTHS) + r")\s+(?:of\s+)?(1[89]\d{2}|20\d{2})\b", re.IGNORECASE)
DATE_TYPES = ("DATE", "TIME")  # DATE, TIMESTAMP, DATETIME, TIMESTAMPTZ
DATE_NAMES = re.compile(r"(^|_)(date|time|day)($|_)|date$|_at$|_on$", re.IGNORECASE)
YEAR_NAMES = re.compile(r"(^|_)year$", re.IGNORECASE)  # d_year, not d_year_seq
MONTH_NAMES = re.compile(r"(^|_)(moy|month)$", re.IGNORECASE)  # d_moy, not d_month_seq


@dataclasses.dataclass(frozen=True)
class DateMention:
    year: int
    month: int | None = None


def date_mentions(question: str) -> list[DateMention]:
    """The years of the question, with their month where one is named just before ("March 2024")."""
    found = [DateMention(int(y), MONTHS[m.lower()]) for m, y in MONTH_YEAR.findall(question)]
    named = {d.year for d in found}
    found += [DateMention(int(y)) for y in YEAR.findall(question) if int(y) not in named]
    return list(dict.fromkeys(found))


def is_date_column(name: str, kind: str) -> bool:
    """A DATE/TIMESTAMP column, or a text one named as a date (SQLite keeps ISO dates as TEXT)."""
    kind = kind.upper()
    if any(t in kind for t in DATE_TYPES):
        return True
    return ("CHAR" in kind or "TEXT" in kind or not kind) and bool(DATE_NAMES.search(name))


def date_filter(dialect: str, column: str, mention: DateMention) -> str:
    """`column` restricted to the mention's year (and month), in `dialect`."""
    if dialect == "sqlite":
        if mention.month:
            return f"strftime('%Y-%m', {column}) = '{mention.year:04d}-{mention.month:02d}'"
        return f"strftime('%Y', {column}) = '{mention.year:04d}'"
    condition = f"EXTRACT(YEAR FROM {column}) = {mention.year}"
    if mention.month:
        condition += f" AND EXTRACT(MONTH FROM {column}) = {mention.month}"
    return condition


def calendar_filter(year_column: str, month_column: str | None, mention: DateMention) -> str:
    """The mention on a calendar dimension's integer year and month columns."""
    condition = f"{year_column} = {mention.year}"
    if mention.month and month_column:
        condition += f" AND {month_column} = {mention.month}"
    return condition


def calendar_columns(columns: list[tuple[str, str]]) -> tuple[str | None, str | None]:
    """(year column, month column) of a table, by name, among integer columns."""
    numeric = [n for n, k in columns if "INT" in k.upper() or "NUM" in k.upper() or "DEC" in k.upper()]
    years = sorted((n for n in numeric if YEAR_NAMES.search(n)), key=len)  # d_year before d_fy_year
    months = sorted((n for n in numeric if MONTH_NAMES.search(n)), key=len)
    return (years or [None])[0], (months or [None])[0]


def is_date_word(phrase: str, mentions: list[DateMention]) -> bool:
    """A month name or a year of the question: part of a date, not a literal to look up ("May" in "May 2002")."""
    word = phrase.strip().lower()
    return any((m.month and MONTHS.get(word) == m.month) or word == str(m.year) for m in mentions)
