"""FindShortestPath: the join path between two tables or columns over the foreign-key graph.

The graph is undirected: every table is linked to its columns, and two tables are linked once PER foreign key
(a networkx MultiGraph, so parallel keys such as orders.sales_rep_id and orders.approved_by -> employees both
survive). Breadth-first search gives the shortest path; each table-to-table hop is rendered with every key that
realises it, followed by ready `JOIN ... ON ...` clauses.
"""

from __future__ import annotations

import dataclasses

import networkx as nx

from tunelab.text2sql.schema import ForeignKey, Schema


class PathError(Exception):
    """A structured failure (unknown or ambiguous endpoint, disconnected tables) the agent can read and act on."""


@dataclasses.dataclass
class JoinPath:
    tables: list[str]
    hops: list[list[ForeignKey]]  # hops[i]: the keys linking tables[i] and tables[i + 1] (parallel ones included)
    start_column: str | None = None
    end_column: str | None = None

    def render(self) -> str:
        if len(self.tables) == 1:
            return f"{self.tables[0]} (same table)"
        parts = []
        for i, keys in enumerate(self.hops):
            left, right = self.tables[i], self.tables[i + 1]
            options = " | ".join(f"{left}.{_side(k, left)} = {right}.{_side(k, right)}" for k in keys)
            parts.append(options if len(keys) == 1 else f"({options})")
        text = " <-> ".join(parts)
        if self.start_column:
            text = f"{self.tables[0]}.{self.start_column} <-> " + text
        if self.end_column:
            text += f" <-> {self.tables[-1]}.{self.end_column}"
        return text

    def join_clauses(self, quote=lambda s: s) -> list[str]:
        """`FROM a JOIN b ON ...` lines; for parallel keys the first is used and the others are listed as options."""
        lines = [f"FROM {quote(self.tables[0])}"]
        for i, keys in enumerate(self.hops):
            left, right = self.tables[i], self.tables[i + 1]
            conds = [f"{quote(left)}.{quote(_side(k, left))} = {quote(right)}.{quote(_side(k, right))}" for k in keys]
            line = f"JOIN {quote(right)} ON {conds[0]}"
            if len(conds) > 1:
                line += "  -- or ON " + " / ".join(conds[1:])
            lines.append(line)
        return lines


def _side(key: ForeignKey, table: str) -> str:
    if key.table == table and key.ref_table != table:
        return key.column
    if key.ref_table == table and key.table != table:
        return key.ref_column
    return key.column  # self-reference


def build_graph(schema: Schema) -> nx.MultiGraph:
    graph = nx.MultiGraph()
    for table in schema.tables.values():
        graph.add_node(("table", table.name))
        for column in table.columns:
            graph.add_edge(("table", table.name), ("column", table.name, column.name))
    for key in schema.foreign_keys:
        if key.table != key.ref_table:  # a self-reference never shortens a path
            graph.add_edge(("table", key.table), ("table", key.ref_table), fk=key)
    return graph


def resolve(schema: Schema, name: str) -> tuple[str, str | None]:
    """`table`, `table.column` or a unique `column` -> (table, column or None); PathError otherwise."""
    name = name.strip().strip('"`')
    table = schema.has_table(name)
    if table:
        return table, None
    hits = schema.find_column(name)
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise PathError(f"'{name}' is ambiguous: " + ", ".join(f"{t}.{c}" for t, c in hits[:8])
                        + "; give table.column")
    import difflib

    names = list(schema.tables) + [f"{t.name}.{c.name}" for t in schema.tables.values() for c in t.columns]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    raise PathError(f"no table or column named '{name}'" + (f"; did you mean {', '.join(close)}?" if close else ""))


def shortest_path(schema: Schema, start: str, end: str, graph: nx.MultiGraph | None = None) -> JoinPath:
    graph = graph if graph is not None else build_graph(schema)
    start_table, start_column = resolve(schema, start)
    end_table, end_column = resolve(schema, end)
    try:
        nodes = nx.shortest_path(graph, ("table", start_table), ("table", end_table))  # BFS: unweighted
    except nx.NetworkXNoPath:
        raise PathError(f"no foreign-key path between {start_table} and {end_table}") from None
    tables = [n[1] for n in nodes]
    hops = []
    for left, right in zip(nodes, nodes[1:]):
        keys = [data["fk"] for data in graph.get_edge_data(left, right).values() if "fk" in data]
        hops.append(sorted(keys, key=lambda k: (k.table, k.column)))
    return JoinPath(tables, hops, start_column, end_column)
