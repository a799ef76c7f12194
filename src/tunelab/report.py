"""The HTML report: capabilities contribute `Section`s; this module renders them (jinja2) with their figures.

A study builds a Section (title, prose, figures, tables, key numbers) and never touches HTML:

    section = Section(title="EPA vs DPO", prose="...", key_numbers={"slope (EPA)": 1.0})
    section.add_figure(fig, "theory.png", caption="Learned vs true reward")
    section.add_table(Table(columns=["method", "r"], rows=[["EPA", 0.93]]))
    write_report([section], "report/")
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
import shutil
from pathlib import Path
from typing import Any

from tunelab.io import atomic_savefig, atomic_write_json, atomic_write_text


@dataclasses.dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""

    def formatted_rows(self) -> list[list[str]]:
        return [[format_cell(v) for v in row] for row in self.rows]

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(row) + " |" for row in self.formatted_rows()]
        return "\n".join(lines)


@dataclasses.dataclass
class Figure:
    path: Path  # a PNG file, copied into the report folder
    caption: str = ""


@dataclasses.dataclass
class Section:
    title: str
    prose: str = ""
    figures: list[Figure] = dataclasses.field(default_factory=list)
    tables: list[Table] = dataclasses.field(default_factory=list)
    key_numbers: dict[str, Any] = dataclasses.field(default_factory=dict)
    results: dict[str, Any] = dataclasses.field(default_factory=dict)  # raw numbers for results.json
    error: str | None = None  # set when the study failed; the report says so instead of hiding it

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-") or "section"

    def add_figure(self, fig, filename: str, directory: str | Path, caption: str = "") -> Path:
        """Save a matplotlib figure under `directory` and attach it."""
        path = atomic_savefig(fig, Path(directory) / filename)
        import matplotlib.pyplot as plt

        plt.close(fig)
        self.figures.append(Figure(path=path, caption=caption))
        return path

    def add_table(self, table: Table) -> Table:
        self.tables.append(table)
        return table


def format_cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "n/a"
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:.4g}"
        return f"{value:.3e}"
    return str(value)


_TEMPLATE = Path(__file__).with_name("templates") / "report.html.j2"


def render_html(sections: list[Section], title: str = "tunelab report") -> str:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["cell"] = format_cell
    template = env.from_string(_TEMPLATE.read_text(encoding="utf-8"))
    from tunelab import __version__

    return template.render(
        title=title,
        sections=sections,
        version=__version__,
        generated=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
    )


def write_report(sections: list[Section], out_dir: str | Path, title: str = "tunelab report") -> Path:
    """Write index.html, results.json and the figures (copied into figures/) under out_dir; return index.html."""
    out = Path(out_dir)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    rendered: list[Section] = []
    for section in sections:
        figures = []
        for i, figure in enumerate(section.figures):
            target = fig_dir / f"{section.slug}-{i}-{Path(figure.path).name}"
            if Path(figure.path).resolve() != target.resolve():
                shutil.copyfile(figure.path, target)
            figures.append(Figure(path=Path("figures") / target.name, caption=figure.caption))
        rendered.append(dataclasses.replace(section, figures=figures))
    atomic_write_json(
        out / "results.json",
        {
            s.title: {"key_numbers": s.key_numbers, "results": s.results, "error": s.error,
                      "tables": [dataclasses.asdict(t) for t in s.tables]}
            for s in rendered
        },
    )
    return atomic_write_text(out / "index.html", render_html(rendered, title=title))
