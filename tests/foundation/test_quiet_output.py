"""A first run is quiet: no third-party FutureWarning and no weight-loading bar unless `--verbose`; the demo says
which study runs, its elapsed time and an estimate of what is left."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from tunelab import library_output
from tunelab.demo import study_name, time_left


def _demo(tmp_path, *flags: str) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in library_output.QUIET_ENV and k != library_output.VERBOSE_ENV}
    done = subprocess.run([sys.executable, "-m", "tunelab.cli", *flags, "demo", "--only", "models.demo",
                           "--out", str(tmp_path / "report")], capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


@pytest.mark.slow
def test_demo_is_quiet_by_default_and_verbose_on_request(tmp_path):
    quiet = _demo(tmp_path / "quiet")
    assert "FutureWarning" not in quiet and "Loading weights" not in quiet, quiet[-2000:]
    assert "study 1 of 1" in quiet and "elapsed" in quiet
    loud = _demo(tmp_path / "loud", "--verbose")
    assert "Loading weights" in loud  # the same run shows what the default hides


def test_third_party_warnings_are_filtered_and_ours_kept():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        library_output.quiet_libraries(environ={})
        warnings.warn_explicit("deprecated", FutureWarning, "x.py", 1, module="transformers.modeling_utils")
        warnings.warn_explicit("ours", FutureWarning, "y.py", 1, module="tunelab.align.preference.trainer")
        warnings.warn_explicit("named like us", FutureWarning, "z.py", 1, module="tunelabx")
    assert [str(w.message) for w in caught] == ["ours"]  # "tunelabx" is another package


def test_quiet_environment_keeps_the_users_own_settings():
    environ = {"TRANSFORMERS_VERBOSITY": "info"}
    with warnings.catch_warnings():
        library_output.quiet_libraries(environ)
    assert environ["TRANSFORMERS_VERBOSITY"] == "info" and environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"


def test_estimate_is_the_mean_pace_times_the_studies_left():
    assert time_left([], 3) is None
    assert time_left([60.0, 120.0], 3) == pytest.approx(270.0)
    assert study_name("tunelab.align.preference.demo") == "align" and study_name("tunelab.align.poft.demo") == "poft_demo"
