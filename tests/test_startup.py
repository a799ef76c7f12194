"""Start-up stays light: building the `tunelab` command and printing any help imports no heavy library, and works
on a core-only install (every optional library blocked), where a command names the pip command it needs.

Each check runs in a fresh interpreter, so modules imported by other tests cannot hide or fake a heavy import.
"""

import json
import re
import subprocess
import sys
from importlib import metadata

import pytest

from tunelab.cli import CAPABILITY_APPS

# numpy too: it alone costs about as much as importing typer and rich
HEAVY = ["torch", "transformers", "peft", "trl", "sentence_transformers", "duckdb", "skimage", "sklearn",
         "datasets", "matplotlib", "numpy"]
# every sub-command the root mounts; a capability that is not installed is not mounted and its help is the root's
SUBCOMMANDS = ["models", "data", "demo"] + [name for _, name in CAPABILITY_APPS]

PROBE = """
import json, sys
blocked = set(json.loads(sys.argv[3]))

class Block:  # what a core-only install looks like: these imports fail as if the packages were absent
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Block())
from tunelab.cli import main
argv = json.loads(sys.argv[1])
code = main(argv) if argv else 0
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(sys.argv[2])))
print("HEAVY=" + json.dumps(heavy))
sys.exit(code)
"""


def probe(argv: list[str], blocked: list[str] = (), source: str = PROBE, watched: list[str] = HEAVY):
    """`tunelab ARGV` in a fresh interpreter; `.heavy`: the `watched` top-level packages it imported."""
    result = subprocess.run([sys.executable, "-c", source, json.dumps(argv), json.dumps(watched),
                             json.dumps(sorted(blocked))], capture_output=True, text=True, timeout=300)
    marker = [line for line in result.stdout.splitlines() if line.startswith("HEAVY=")]
    result.heavy = json.loads(marker[-1][len("HEAVY="):]) if marker else None
    return result


def _names(requirements: list[str] | None) -> set[str]:
    """Distribution names of the unconditional requirements (a dependency's own extras are not installed)."""
    names = set()
    for line in requirements or []:
        if "extra" not in line.partition(";")[2]:
            names.add(re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9._-]+)", line).group(1)).lower())
    return names


def _closure(names: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += _names(metadata.requires(name))
        except metadata.PackageNotFoundError:
            pass
    return seen


def optional_import_names() -> list[str]:
    """Top-level import names that only tunelab's extras bring in (not core nor anything core depends on)."""
    requires = metadata.requires("tunelab")
    core = _closure(_names(requires))
    optional = {re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9._-]+)", line).group(1)).lower()
                for line in requires if "extra ==" in line}
    only_optional = _closure(optional - {"tunelab"}) - core
    names = []
    for module, dists in metadata.packages_distributions().items():
        if module.isidentifier() and all(re.sub(r"[-_.]+", "-", d).lower() in only_optional for d in dists):
            names.append(module)
    return sorted(names)


def test_probe_sees_a_heavy_import():
    """The probe can fail: with a heavy import added before the check, it reports that library."""
    result = probe([], source=PROBE.replace("from tunelab.cli import main", "import sklearn; main = None"))
    assert result.heavy == ["numpy", "sklearn"]


def test_import_builds_the_app_without_heavy_libraries():
    result = probe([])
    assert result.returncode == 0, result.stderr
    assert result.heavy == [], f"`import tunelab.cli` imported {result.heavy}; import them inside the command"


@pytest.mark.parametrize("argv", [["--help"]] + [[name, "--help"] for name in SUBCOMMANDS])
def test_help_is_light(argv):
    result = probe(argv)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    assert result.heavy == [], f"`tunelab {' '.join(argv)}` imported {result.heavy}"


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_subcommand_help_skips_typers_value_checks(name):
    """The root's --help flag has a bool default, so typer does not import pydantic to check it (cli._RootGroup)."""
    result = probe([name, "--help"], watched=["pydantic"])
    assert result.returncode == 0, result.stderr
    assert result.heavy == []


def test_module_entry_point_help_exits_zero():
    """`python -m tunelab.cli` (the path of the console script's `main`, through `__main__`) prints sub-command help."""
    result = subprocess.run([sys.executable, "-m", "tunelab.cli", "sql", "--help"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


@pytest.fixture(scope="module")
def blocked():
    names = optional_import_names()
    assert {"torch", "sqlglot", "sklearn", "peft"} <= set(names)  # the extras really are blocked
    assert not {"typer", "rich", "numpy", "jinja2"} & set(names)  # core is not
    return names


@pytest.mark.parametrize("argv", [["--help"]] + [[name, "--help"] for name in SUBCOMMANDS])
def test_help_works_on_a_core_only_install(argv, blocked):
    result = probe(argv, blocked)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Usage:" in result.stdout


def test_missing_extra_is_one_line_naming_the_pip_command(blocked, tmp_path):
    result = probe(["cortex", "simulate", "--out", str(tmp_path / "rec"), "--n-images", "4"], blocked)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: `tunelab cortex` needs "), result.stderr[-2000:]
    assert lines[0].endswith("which is not installed: pip install 'tunelab[cortex]'")
