"""What third-party libraries print: off by default, on with `tunelab --verbose`.

transformers, peft, torch and huggingface_hub write deprecation warnings, advisory log lines and a
"Loading weights" bar for every model load; a user of `tunelab` wants to see which study is running and
how long is left, not those. Everything here works through environment variables and warning filters, so
nothing heavy is imported (the libraries read the variables when they are first imported, also in child
processes) and warnings issued from tunelab's own code stay visible: those are ours to fix.
"""

from __future__ import annotations

import os
import warnings

VERBOSE_ENV = "TUNELAB_VERBOSE"

# set only when absent: a user's own setting wins
QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # also transformers' own bars ("Loading weights ...")
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",  # the fork warning of Rust tokenizers
}

# warnings attributed to any module outside tunelab
THIRD_PARTY = r"(?!tunelab(\.|$))"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def quiet_libraries(environ: dict | None = None) -> None:
    """Silence third-party warnings, log lines and progress bars for this process and its children."""
    environ = os.environ if environ is None else environ
    for name, value in QUIET_ENV.items():
        environ.setdefault(name, value)
    for category in (FutureWarning, DeprecationWarning, UserWarning, RuntimeWarning):
        warnings.filterwarnings("ignore", category=category, module=THIRD_PARTY)


def show_libraries() -> None:
    """--verbose: everything the libraries print, in this process and in child processes."""
    os.environ[VERBOSE_ENV] = "1"
