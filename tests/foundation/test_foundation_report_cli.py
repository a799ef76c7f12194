import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tunelab import __version__
from tunelab.cli import main
from tunelab.io import atomic_write_json, staged_dir
from tunelab.report import Section, Table, write_report


def _section(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(np.arange(10), np.arange(10) ** 2)
    section = Section(title="A study", prose="What it shows.", key_numbers={"slope": 1.0123})
    section.add_figure(fig, "curve.png", tmp_path / "work", caption="a curve")
    section.add_table(Table(columns=["method", "score"], rows=[["ours", 0.91234], ["peer", 0.8]]))
    return section


def test_report_writes_html_figures_and_json(tmp_path):
    index = write_report([_section(tmp_path), Section(title="Broken", error="ValueError: boom")], tmp_path / "r")
    html = index.read_text()
    assert "A study" in html and "0.9123" in html and "figures/a-study-0-curve.png" in html
    assert "This study failed: ValueError: boom" in html
    assert (tmp_path / "r" / "figures" / "a-study-0-curve.png").stat().st_size > 1000
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["A study"]["key_numbers"]["slope"] == pytest.approx(1.0123)


def test_table_markdown():
    assert Table(["a", "b"], [[1, 0.5]]).to_markdown() == "| a | b |\n|---|---|\n| 1 | 0.5 |"


def test_atomic_outputs_leave_nothing_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with staged_dir(tmp_path / "out") as tmp:
            (tmp / "half.json").write_text("{")
            raise RuntimeError("boom")
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []
    atomic_write_json(tmp_path / "x.json", {"a": np.float32(1.5), "b": np.arange(2)})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 1.5, "b": [0, 1]}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    assert (tmp_path / "x.json").stat().st_mode & 0o044  # readable by others, like a normally written file


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"tunelab {__version__}"
    assert main(["--help"]) == 0
    assert "models" in capsys.readouterr().out


def test_console_script_user_error_is_one_line_exit_2():
    result = subprocess.run([sys.executable, "-m", "tunelab.cli", "models", "install", "nope"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: unknown model")
    assert "Traceback" not in result.stderr


def _page_is_not_blank(png_path):
    import matplotlib.image

    pixels = matplotlib.image.imread(png_path)[..., :3]
    non_white = (pixels.mean(axis=2) < 0.9).mean()
    return pixels.std() > 0.05 and non_white > 0.01


@pytest.mark.slow
def test_demo_report_renders_in_headless_chromium(tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (make setup installs it)")
        pytest.skip("chromium not installed")
    assert main(["demo", "--out", str(tmp_path / "report"), "--only", "models.demo"]) == 0
    index = tmp_path / "report" / "index.html"
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600",
                    f"--screenshot={shot}", index.as_uri()], check=True, capture_output=True, timeout=120)
    assert shot.stat().st_size > 5000 and _page_is_not_blank(shot)
    assert "Embedded models" in index.read_text()


@pytest.mark.parametrize("argv, message", [
    (["models", "list", "--no-such-flag"], "No such option: --no-such-flag"),
    (["data", "info"], "Missing argument"),
])
def test_usage_errors_are_one_line_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
