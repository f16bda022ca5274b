# The README's set-up: `make demo` and `make test`. Both work on a fresh machine
# that has only Python >= 3.10 (and apt-get for redis-server when it is missing).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test check lint typecheck drift unit soak bench redis-server generate clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "hotcache needs Python >= 3.10"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hotcache demo

redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "redis-server missing: installing Debian's redis-server"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends redis-server >/dev/null; }
	@command -v redis-server >/dev/null 2>&1 || { echo "could not install redis-server"; exit 1; }

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts examples
	$(BIN)/ruff format --check src tests bench scripts examples

typecheck: $(STAMP)
	$(BIN)/mypy --strict src/hotcache

drift: $(STAMP)
	$(BIN)/python scripts/unasync.py --check

check: lint typecheck drift

unit: $(STAMP) redis-server
	$(BIN)/python -m pytest -q

# The soak and fault runs, at the small size CI can afford; `HOTCACHE_SOAK_SCALE=1`
# runs them at full size.
soak: $(STAMP) redis-server
	HOTCACHE_SOAK_SCALE=$${HOTCACHE_SOAK_SCALE:-0.2} $(BIN)/python -m pytest -q -m soak; \
	  rc=$$?; [ $$rc -eq 5 ] && echo "no soak tests selected" && rc=0; exit $$rc

# The soak runs first so that the suite's own summary is the last line CI prints.
test: check soak unit

bench: $(STAMP) redis-server
	$(BIN)/python bench/run.py

generate: $(STAMP)
	$(BIN)/python scripts/unasync.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
