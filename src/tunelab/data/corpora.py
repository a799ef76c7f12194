"""Built-in offline corpora of real text: Debian package descriptions by section, stdlib docstrings by package.

Kept free of numpy at import time so that `tunelab data --help` can list the names cheaply.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from tunelab.errors import UserError

if TYPE_CHECKING:
    from tunelab.data.labeled import LabeledTextDataset


def _cache_path(name: str) -> Path:
    import os

    root = Path(os.environ.get("TUNELAB_CACHE") or Path.home() / ".cache" / "tunelab") / "data"
    root.mkdir(parents=True, exist_ok=True)
    return root / name


def _finish(texts: list[str], labels: list[str], name: str, min_count: int) -> LabeledTextDataset:
    """Deduplicate texts (dropping texts seen under two labels), drop rare labels, index labels."""
    from tunelab.data.labeled import LabeledTextDataset  # numpy: imported on first use, not for --help

    by_text: dict[str, set[str]] = {}
    for text, label in zip(texts, labels):
        by_text.setdefault(text, set()).add(label)
    pairs = [(t, next(iter(ls))) for t, ls in by_text.items() if len(ls) == 1]
    counts: dict[str, int] = {}
    for _, label in pairs:
        counts[label] = counts.get(label, 0) + 1
    names = sorted(label for label, c in counts.items() if c >= min_count)
    index = {n: i for i, n in enumerate(names)}
    kept = [(t, index[l]) for t, l in pairs if l in index]
    return LabeledTextDataset([t for t, _ in kept], [l for _, l in kept], names, name)


def _read_cache(path: Path) -> dict | None:
    """The cached corpus at `path`, None when there is none; a damaged one (a killed or foreign write) is
    reported in one line on stderr and treated as missing, so the caller rebuilds it."""
    import sys

    if not path.is_file():
        return None
    try:
        cached = json.loads(path.read_bytes())
        if not (isinstance(cached, dict) and isinstance(cached.get("texts"), list)
                and isinstance(cached.get("labels"), list) and len(cached["texts"]) == len(cached["labels"])):
            raise ValueError("not a corpus cache")
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        print(f"corrupt corpus cache {path} ({getattr(err, 'msg', err)}); rebuilding it", file=sys.stderr)
        return None
    cached.setdefault("stamp", None)
    return cached


def _cached_corpus(name: str, source_stamp: str, build: Callable[[], tuple[list[str], list[str]]]):
    from tunelab.io import atomic_write_json

    path = _cache_path(f"{name}.json")
    cached = _read_cache(path)
    if cached is not None and cached["stamp"] == source_stamp:
        return cached["texts"], cached["labels"]
    texts, labels = build()
    atomic_write_json(path, {"stamp": source_stamp, "texts": texts, "labels": labels})
    return texts, labels


APT_LISTS = Path("/var/lib/apt/lists")


def _apt_text(path: Path) -> str:
    """Decompressed text of an apt list file (apt-helper knows every compression apt uses)."""
    import subprocess

    result = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"cannot read {path}: {result.stderr.strip().splitlines()[-1] if result.stderr else 'apt-helper failed'}")
    return result.stdout


def _deb822(text: str):
    """Paragraphs of a Debian control-style file as dicts (continuation lines joined with newlines)."""
    for paragraph in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in paragraph.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line[1:]
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def _description_text(description: str) -> str:
    lines = [("" if line.strip() == "." else line.strip()) for line in description.splitlines()]
    return " ".join(" ".join(lines).split())


def debian_sections(min_count: int = 100) -> LabeledTextDataset:
    """Debian package descriptions (synopsis + long description) labelled by archive section.

    Read from apt's lists (`apt-get update -o Acquire::Languages=en` fetches the long descriptions; without them the
    one-line synopsis is used). The `contrib/` and `non-free/` prefixes are dropped, texts are deduplicated (a text
    under two sections is dropped as ambiguous) and sections with fewer than `min_count` texts are left out.
    """
    packages = sorted(APT_LISTS.glob("*_Packages*"))
    if not packages:
        raise UserError("no apt package lists on this machine: run `apt-get update -o Acquire::Languages=en` first")
    translations = sorted(APT_LISTS.glob("*_i18n_Translation-en*"))
    stamp = json.dumps([(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in packages + translations])

    def build() -> tuple[list[str], list[str]]:
        long_by_md5: dict[str, str] = {}
        for path in translations:
            for fields in _deb822(_apt_text(path)):
                if "Description-md5" in fields and "Description-en" in fields:
                    long_by_md5[fields["Description-md5"]] = fields["Description-en"]
        texts, labels = [], []
        for path in packages:
            for fields in _deb822(_apt_text(path)):
                section = fields.get("Section", "").split("/")[-1]
                description = long_by_md5.get(fields.get("Description-md5", ""), fields.get("Description", ""))
                if section and description:
                    texts.append(_description_text(description))
                    labels.append(section)
        return texts, labels

    texts, labels = _cached_corpus("debian-sections", stamp, build)
    return _finish(texts, labels, "debian-sections", min_count)


_STDLIB_SCRIPT = r"""
import importlib, inspect, json, pkgutil, sys, warnings
warnings.simplefilter("ignore")
SKIP = {"antigravity", "this", "idlelib", "turtledemo", "test", "lib2to3", "tkinter", "turtle", "__main__"}
rows = []
names = sorted(n for n in sys.stdlib_module_names if not n.startswith("_") and n not in SKIP)
for top in names:
    try:
        module = importlib.import_module(top)
    except Exception:
        continue
    modules = [module]
    for info in pkgutil.walk_packages(getattr(module, "__path__", []), top + "."):
        if any(part.startswith("_") or part in SKIP for part in info.name.split(".")):
            continue
        try:
            modules.append(importlib.import_module(info.name))
        except Exception:
            pass
    seen = set()
    for mod in modules:
        for name, obj in vars(mod).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            members = [obj] + ([m for n, m in vars(obj).items() if not n.startswith("_")] if inspect.isclass(obj) else [])
            for member in members:
                doc = inspect.getdoc(member) if callable(member) or inspect.isclass(member) else None
                if doc and len(doc) >= 40 and id(member) not in seen:
                    seen.add(id(member))
                    rows.append((doc, top))
json.dump(rows, sys.stdout)
"""


def stdlib_docs(min_count: int = 60) -> LabeledTextDataset:
    """Docstrings of the Python standard library's public functions, classes and methods, labelled by the
    top-level package they belong to (email, xml, asyncio, ...). Real technical prose, offline everywhere."""
    import subprocess
    import sys
    import sysconfig

    stamp = f"{sys.version}|{sysconfig.get_paths()['stdlib']}"

    def build() -> tuple[list[str], list[str]]:
        # a fresh interpreter: importing the whole stdlib has side effects we keep out of this process
        result = subprocess.run([sys.executable, "-c", _STDLIB_SCRIPT], capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=600)
        if result.returncode != 0:
            raise UserError(f"collecting standard-library docstrings failed: {result.stderr.strip()[-200:]}")
        rows = json.loads(result.stdout)
        return [" ".join(doc.split()) for doc, _ in rows], [label for _, label in rows]

    texts, labels = _cached_corpus("stdlib-docs", stamp, build)
    return _finish(texts, labels, "stdlib-docs", min_count)


BUILTIN_CORPORA: dict[str, Callable[..., LabeledTextDataset]] = {
    "debian-sections": debian_sections,
    "stdlib-docs": stdlib_docs,
}
