"""The controller's first moves: the tools search for what a small model cannot plan to search for.

Before the model writes any SQL, the controller runs SearchColumn on the question, SearchValue on its phrases and
FindShortestPath between the tables they hit. What comes back is a compact, value-grounded slice of the schema:
the few tables that matter with their columns, the stored spellings of the question's literals, and ready JOIN
clauses. Each tool call is a step of the trajectory, like the model's own.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from tunelab.text2sql.actions import Action
from tunelab.text2sql.db import sql_literal
from tunelab.text2sql.join_path import PathError
from tunelab.text2sql.temporal import (DateMention, calendar_columns, calendar_filter, date_filter, date_mentions,
                                       is_date_column, is_date_word)
from tunelab.text2sql.tools import Observation, Toolbox
from tunelab.text2sql.value_index import fold

STOPWORDS = frozenset("""
a an the of in on at to for from by with and or not no is are was were be been being do does did has have had
how many much what which who whom whose when where why there their them they it its this that these those
all any each every per than then so as into over under between among about above below up down out off
me my we our you your he she his her i one ones
number count total sum average avg mean maximum minimum max min highest lowest largest smallest most least
list show give find tell name names value values record records row rows made placed set equal
""".split())
WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9#&'._-]*")
MAX_TABLES = 5
MAX_VALUE_COLUMNS = 2  # stored spellings kept per phrase (the columns most related to the question)
WIDE_TABLE = 16  # above this many columns only the relevant ones are shown
WIDE_COLUMNS = 8
LEXICAL_BONUS = 0.3  # a question word inside a column's name (`year` in d_year)
TOP_COLUMN_MARGIN = 0.05
RELEVANT_RANKS = 15  # a lower-case word's stored match must be in one of the question's most relevant columns


@dataclasses.dataclass(frozen=True)
class ValueMatch:
    phrase: str
    table: str
    column: str
    value: str


@dataclasses.dataclass
class Grounding:
    """What the controller found: shown to the model as a schema slice, kept as trajectory steps."""

    tables: dict[str, list[str]]  # table -> columns shown
    values: list[ValueMatch]
    joins: list[str]  # JOIN clauses, in order after the first table: "JOIN b ON a.x = b.y"
    steps: list[tuple[Action, Observation]] = dataclasses.field(default_factory=list)
    date_filters: list[str] = dataclasses.field(default_factory=list)  # the question's dates as SQL conditions

    def render(self, quote=lambda s: s) -> str:
        lines = ["Tables (only the relevant ones):"]
        lines += [f"{quote(t)}({', '.join(quote(c) for c in cols)})" for t, cols in self.tables.items()]
        if self.values:
            lines.append("Stored values matching the question (use them exactly):")
            lines += [f"{quote(v.table)}.{quote(v.column)} = {sql_literal(v.value)}" for v in self.values]
        if self.date_filters:
            lines.append("Dates of the question as conditions (use them exactly):")
            lines += self.date_filters
        if self.joins:
            lines.append("Join clause: FROM " + quote(next(iter(self.tables))) + " " + " ".join(self.joins))
        return "\n".join(lines)


    def reminder(self, quote=lambda s: s) -> str:
        """The slice's join clause and conditions in one line, for a model that went astray."""
        parts = []
        if self.joins:
            parts.append("FROM " + quote(next(iter(self.tables))) + " " + " ".join(self.joins))
        first = {v.phrase: v for v in reversed(self.values)}.values()  # a phrase's best column only
        conditions = [f"{quote(v.table)}.{quote(v.column)} = {sql_literal(v.value)}" for v in first]
        conditions += self.date_filters
        if conditions:
            parts.append("WHERE " + " AND ".join(conditions))
        return f"Start from: {' '.join(parts)}" if parts else ""


def words(question: str) -> list[str]:
    return [w.strip("'.,-") for w in WORD.findall(question) if w.strip("'.,-")]


def singular(word: str) -> str:
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith(("sses", "shes", "ches", "xes")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        return w[:-1]
    return w


def content_words(question: str) -> list[str]:
    return [w for w in words(question) if w.lower() not in STOPWORDS]


def value_phrases(question: str, max_n: int = 3) -> list[str]:
    """Runs of 1..max_n adjacent question words with no stopword inside: the candidates for stored literals."""
    tokens = words(question)
    phrases = []
    for n in range(max_n, 0, -1):
        for i in range(len(tokens) - n + 1):
            gram = tokens[i:i + n]
            if any(g.lower() in STOPWORDS for g in gram):
                continue
            phrases.append(" ".join(gram))
    return list(dict.fromkeys(phrases))


def named_tables(schema, question: str) -> list[str]:
    """Tables named by adjacent question words (singular), longest names first, each word used once:
    "store sales" names store_sales, not store as well."""
    said = [singular(w) for w in words(question)]
    used = [False] * len(said)
    found = []
    for table in sorted(schema.tables, key=lambda t: -len(re.split(r"[_\s]+", t))):
        parts = [singular(p) for p in re.split(r"[_\s]+", table) if p]
        for i in range(len(said) - len(parts) + 1):
            if said[i:i + len(parts)] == parts and not any(used[i:i + len(parts)]):
                used[i:i + len(parts)] = [True] * len(parts)
                found.append(table)
                break
    return sorted(found, key=lambda t: said.index(singular(re.split(r"[_\s]+", t)[0])))


def column_relevance(toolbox: Toolbox, question: str) -> dict[tuple[str, str], float]:
    """Score of every column for the question: its similarity to the whole question plus to its best phrase."""
    search = toolbox.column_search
    whole = search.scores(question)
    phrases = content_words(question)
    best = np.max([search.scores(p) for p in phrases], axis=0) if phrases else np.zeros_like(whole)
    said = {singular(w) for w in phrases if len(w) >= 3}
    return {(table, column): float(whole[i] + best[i]) + LEXICAL_BONUS * any(w in column.lower() for w in said)
            for i, (table, column, _, _) in enumerate(search.entries)}


def match_values(toolbox: Toolbox, question: str, relevance: dict) -> list[ValueMatch]:
    """Phrases of the question stored verbatim (up to case, accents and padding) in some text column."""
    matches: list[ValueMatch] = []
    covered: set[str] = set()
    rank = {tc: i for i, tc in enumerate(sorted(relevance, key=lambda tc: -relevance[tc]))}
    for phrase in value_phrases(question):
        folded = fold(phrase).strip()
        if len(folded) < 2 and not phrase.isupper():
            continue
        if any(folded in c.split() or folded in c for c in covered) and " " not in folded:
            continue  # a word of a longer phrase that matched already
        hits = [h for h in toolbox.value_index.search(phrase, k=50) if fold(h.value).strip() == folded]
        hits.sort(key=lambda h: -relevance.get((h.table, h.column), 0.0))
        # a capitalised, upper-case or coded phrase is a literal wherever it is stored; an ordinary lower-case
        # word (or a second column) only in a column the question is about
        literal = phrase[:1].isupper() or any(ch.isdigit() or ch in "#&-" for ch in phrase)
        kept = [h for i, h in enumerate(hits[:MAX_VALUE_COLUMNS])
                if (literal and i == 0) or rank.get((h.table, h.column), len(rank)) < RELEVANT_RANKS]
        if kept:
            covered.add(folded)
            matches += [ValueMatch(phrase, h.table, h.column, h.value) for h in kept]
    return matches


def connect(toolbox: Toolbox, tables: list[str]) -> tuple[list[str], list[str], list[tuple[Action, Observation]]]:
    """Tables linked by shortest foreign-key paths from the first one; the JOIN clauses; the tool steps."""
    if len(tables) < 2:
        return tables, [], []
    linked, conditions, steps = [tables[0]], [], []
    for target in tables[1:]:
        if target in linked:
            continue
        best = None
        for source in linked:
            try:
                path = toolbox.join_path(source, target)
            except PathError:
                continue
            if best is None or len(path.tables) < len(best.tables):
                best = path
        if best is None:
            continue
        steps.append((Action("FindShortestPath", {"start": best.tables[0], "end": target}),
                      toolbox.find_shortest_path(best.tables[0], target)))
        q = toolbox.db.quote_if_needed
        for i, keys in enumerate(best.hops):
            left, right = best.tables[i], best.tables[i + 1]
            key = keys[0]
            a, b = (key.column, key.ref_column) if key.table == left else (key.ref_column, key.column)
            if right not in linked:
                conditions.append(f"JOIN {q(right)} ON {q(left)}.{q(a)} = {q(right)}.{q(b)}")
                linked.append(right)
    return linked, conditions, steps


def shown_columns(toolbox: Toolbox, table: str, relevance: dict, keep: set[str]) -> list[str]:
    """All columns of a narrow table; for a wide one its primary key, the columns `keep` names (values, joins)
    and the ones most relevant to the question."""
    columns = toolbox.schema.tables[table].columns
    if len(columns) <= WIDE_TABLE:
        return [c.name for c in columns]
    ranked = sorted((c.name for c in columns), key=lambda c: -relevance.get((table, c), 0.0))
    chosen = {c.name for c in columns if c.primary_key} | keep | set(ranked[:WIDE_COLUMNS])
    return [c.name for c in columns if c.name in chosen]


def pick_tables(named: list[str], values: list[ValueMatch], relevance: dict, max_tables: int) -> list[str]:
    """Named tables and those holding the question's values; the best column's table too when it beats every
    column of those (the attribute asked for lives elsewhere); the two best columns' tables when nothing is named."""
    wanted = list(dict.fromkeys(named + [v.table for v in values]))
    ranked = sorted(relevance, key=lambda tc: -relevance[tc])
    if not wanted:
        wanted = list(dict.fromkeys(t for t, _ in ranked[:2]))
    else:
        best_in = max(relevance[tc] for tc in relevance if tc[0] in wanted)
        top = ranked[0]
        if top[0] not in wanted and relevance[top] > best_in + TOP_COLUMN_MARGIN:
            wanted.append(top[0])
    return wanted[:max_tables]


def ground_dates(toolbox: Toolbox, mentions: list[DateMention], tables: list[str], relevance: dict):
    """Conditions for the question's dates: on the most relevant date column of the chosen tables, else on the
    year/month columns of a calendar table one foreign key away (TPC-DS's date_dim). Returns the conditions, the
    calendar table's JOIN clause (or None), the columns to show, and the FindShortestPath step for that join."""
    schema, q = toolbox.schema, toolbox.db.quote_if_needed
    own = [(t, c.name) for t in tables for c in schema.tables[t].columns if is_date_column(c.name, c.type)]
    if own:
        table, column = max(own, key=lambda tc: relevance.get(tc, 0.0))
        conditions = [date_filter(schema.dialect, f"{q(table)}.{q(column)}", m) for m in mentions]
        return conditions, None, {table: {column}}, []
    options = []
    for fk in schema.foreign_keys:
        if fk.table in tables and fk.ref_table not in tables:
            year, month = calendar_columns([(c.name, c.type) for c in schema.tables[fk.ref_table].columns])
            if year:
                options.append((relevance.get((fk.table, fk.column), 0.0), fk, year, month))
    if not options:
        return [], None, {}, []
    _, fk, year, month = max(options, key=lambda o: o[0])
    cal = fk.ref_table
    conditions = [calendar_filter(f"{q(cal)}.{q(year)}", month and f"{q(cal)}.{q(month)}", m) for m in mentions]
    clause = f"JOIN {q(cal)} ON {q(fk.table)}.{q(fk.column)} = {q(cal)}.{q(fk.ref_column)}"
    step = (Action("FindShortestPath", {"start": fk.table, "end": cal}), toolbox.find_shortest_path(fk.table, cal))
    shown = {cal: {year, fk.ref_column} | ({month} if month else set()), fk.table: {fk.column}}
    return conditions, clause, shown, [step]


def ground(toolbox: Toolbox, question: str, max_tables: int = MAX_TABLES) -> Grounding:
    steps: list[tuple[Action, Observation]] = []
    relevance = column_relevance(toolbox, question)
    steps.append((Action("SearchColumn", {"query": question}), toolbox.search_column(question)))
    mentions = date_mentions(question)
    values = [v for v in match_values(toolbox, question, relevance) if not is_date_word(v.phrase, mentions)]
    phrases = list(dict.fromkeys(v.phrase for v in values))
    if phrases:
        steps.append((Action("SearchValue", {"query": phrases}), toolbox.search_value(phrases)))
    wanted = pick_tables(named_tables(toolbox.schema, question), values, relevance, max_tables)
    tables, joins, path_steps = connect(toolbox, wanted)
    steps += path_steps
    keep: dict[str, set[str]] = {}
    date_filters: list[str] = []
    if mentions:
        date_filters, calendar_join, date_columns, date_steps = ground_dates(toolbox, mentions, tables, relevance)
        steps += date_steps
        if calendar_join:
            joins.append(calendar_join)
            tables.append(calendar_join.split()[1].strip('"'))
        for table, columns in date_columns.items():
            keep.setdefault(table, set()).update(columns)
    for v in values:
        keep.setdefault(v.table, set()).add(v.column)
    for clause in joins:
        for side in clause.split(" ON ", 1)[1].split(" = "):
            table, _, column = side.rpartition(".")
            keep.setdefault(table.strip('"'), set()).add(column.strip('"'))
    top = max(relevance, key=relevance.get)
    keep.setdefault(top[0], set()).add(top[1])
    shown = {t: shown_columns(toolbox, t, relevance, keep.get(t, set())) for t in tables}
    return Grounding(shown, [v for v in values if v.table in shown], joins, steps, date_filters)
