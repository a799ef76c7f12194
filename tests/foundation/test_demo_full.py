"""`tunelab demo --full` reaches every study as `full=True`; the default run passes `full=False`."""

import sys

from tunelab import demo
from tunelab.cli import main


def test_full_flag_reaches_each_study(tmp_path, monkeypatch):
    package = tmp_path / "fake_studies"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "demo.py").write_text(
        "from tunelab.report import Section\n"
        "CALLS = []\n"
        "def run(out_dir, full=False):\n"
        "    CALLS.append(full)\n"
        "    return [Section(title=f'fake full={full}')]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(demo, "DEMO_MODULES", ["fake_studies.demo"])
    assert main(["demo", "--out", str(tmp_path / "small")]) == 0
    assert main(["demo", "--out", str(tmp_path / "big"), "--full"]) == 0
    assert sys.modules["fake_studies.demo"].CALLS == [False, True]
    assert "fake full=True" in (tmp_path / "big" / "index.html").read_text()
