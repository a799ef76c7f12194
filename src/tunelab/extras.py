"""Optional libraries: which extra of tunelab installs each one, and the one line a user sees when it is missing.

The extras are read from tunelab's installed metadata (pyproject.toml's `[project.optional-dependencies]`), so the
message always names an extra that exists: `pip install 'tunelab[text2sql]'`.
"""

from __future__ import annotations

import importlib
import re
from functools import lru_cache
from importlib import metadata
from types import ModuleType

from tunelab.errors import UserError

# import name -> distribution name, where they differ
_DISTRIBUTIONS = {
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "sentence_transformers": "sentence-transformers",
    "small_text": "small-text",
}
# `tunelab` sub-command -> the extra that makes all of it work
COMMAND_EXTRAS = {"align": "align", "adapters": "adapters", "active": "active", "sql": "text2sql",
                  "cortex": "cortex", "models": "models", "data": "data", "demo": "all"}
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")
_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?")


def normalise(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def distribution(module: str) -> str:
    """The pip name of a top-level import name."""
    top = module.split(".")[0]
    return normalise(_DISTRIBUTIONS.get(top, top))


def resolve_extras(requirements: list[str]) -> dict[str, set[str]]:
    """extra -> every distribution it installs, `tunelab[other]` references followed, from Requires-Dist lines."""
    direct: dict[str, set[str]] = {}
    references: dict[str, set[str]] = {}
    for line in requirements:
        marker = _EXTRA_MARKER.search(line)
        if marker is None:
            continue
        name, inner = _REQUIREMENT.match(line.split(";")[0]).groups()
        if normalise(name) == "tunelab":
            named = {x.strip() for x in (inner or "").split(",")} - {""}
            references.setdefault(marker.group(1), set()).update(named)
        else:
            direct.setdefault(marker.group(1), set()).add(normalise(name))

    def closure(extra: str, seen: frozenset[str]) -> set[str]:
        found = set(direct.get(extra, ()))
        for other in references.get(extra, set()) - seen:
            found |= closure(other, seen | {extra})
        return found

    return {extra: closure(extra, frozenset()) for extra in direct.keys() | references.keys()}


@lru_cache(maxsize=1)
def installed_extras() -> dict[str, set[str]]:
    """tunelab's extras as installed; empty when tunelab runs from a source tree without metadata."""
    try:
        return resolve_extras(metadata.requires("tunelab") or [])
    except metadata.PackageNotFoundError:
        return {}


def extra_for(module: str, preferred: str | None = None, extras: dict[str, set[str]] | None = None) -> str | None:
    """The extra to install for `module`: `preferred` when it has it, else the smallest extra that does."""
    extras = installed_extras() if extras is None else extras
    wanted = distribution(module)
    if preferred in extras and wanted in extras[preferred]:
        return preferred
    holders = [e for e, packages in extras.items() if wanted in packages and e != "all"]
    return min(holders, key=lambda e: (len(extras[e]), e)) if holders else None


def missing_message(err: ModuleNotFoundError, command: str | None = None,
                    extras: dict[str, set[str]] | None = None) -> str | None:
    """One line naming the pip command when `err` is about one of tunelab's optional libraries, else None."""
    if not err.name:
        return None
    extra = extra_for(err.name, COMMAND_EXTRAS.get(command or ""), extras)
    if extra is None:
        return None
    who = f"`tunelab {command}`" if command in COMMAND_EXTRAS else "this"
    return f"{who} needs {distribution(err.name)}, which is not installed: pip install 'tunelab[{extra}]'"


def require(module: str, extra: str) -> ModuleType:
    """Import an optional library, or raise UserError naming the pip command that installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] == module.split(".")[0]:
            raise UserError(f"{distribution(module)} is not installed: pip install 'tunelab[{extra}]'") from err
        raise
