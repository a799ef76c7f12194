"""The README's layout section names exactly the shared modules and packages that src/tunelab holds."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "tunelab"


def layout_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    lines = block.strip("\n").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("src/tunelab/"))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), len(lines))
    return lines[start:end]


def named(line: str) -> tuple[set[str], set[str]]:
    """(.py files, folders) a layout line names; words in parentheses are comments."""
    words = re.sub(r"\([^)]*\)", " ", line).split()
    return {w for w in words if w.endswith(".py")}, {w.rstrip("/") for w in words if w.endswith("/")}


def test_top_level_modules_and_packages_match():
    files, folders = set(), set()
    for line in layout_lines():
        f, d = named(line)
        if line.lstrip().startswith(("models/", "data/")):
            f = set()  # the package's own files: checked below
        files |= f
        folders |= d
    folders.discard("src/tunelab")
    assert files == {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert folders == {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}


def test_models_and_data_packages_match():
    for package in ("models", "data"):
        line = next(line for line in layout_lines() if line.lstrip().startswith(f"{package}/"))
        files, _ = named(line)
        assert files == {p.name for p in (PACKAGE / package).glob("*.py")}, package
