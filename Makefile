# Set-up and entry points. Two commands do everything on a fresh machine:
#   make demo   # install into .venv, start the embedded service, tune over HTTP, recommend
#   make test   # install into .venv (with dev tools), lint, type-check, run the tests
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU machines: the pinned CPU wheel. GPU nodes: TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0

.PHONY: install install-dev demo local-run test lint clean pg-up browser

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e .

install-dev: install
	$(BIN)/pip install -q -e '.[dev]' ./tests/plugin_pkg

demo: install
	scripts/demo.sh

local-run: install
	$(BIN)/tuner run --model mlp --dataset digits --trials 30 --epochs 10

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy

# Two pytest workers, each with its own Ray and databases (TEST_WORKERS=0: one process).
TEST_WORKERS ?= 2
test: lint pg-up browser
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache

# The test suite needs a real PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth); start the
# local cluster when it is down. The tests create (and drop) their own fresh databases.
pg-up:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@for i in 1 2 3 4 5 6 7 8 9 10; do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done; echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1

# The UI tests drive a real headless Chromium: Debian's chromium and chromedriver, installed when
# missing (Playwright's own browser download needs internet; the package registry does not).
browser:
	@command -v chromium > /dev/null && command -v chromedriver > /dev/null || \
	  { apt-get update -q && apt-get install -y -q chromium chromium-driver; }
