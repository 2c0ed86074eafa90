# hutong — `make run` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help run up test unit integration lint bench clean tools

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP) ## set up, start the hub on embedded defaults, replay the sample feed, print a summary
	$(BIN)/hutong demo

up: $(STAMP) ## set up and run the hub in the foreground (Ctrl-C stops it)
	$(BIN)/hutong up

#: Debian packages some tests drive: promtool checks the chart's alert rules, a real
#: Prometheus scrapes the hub, headless Chromium opens the exchange monitor (with a CJK
#: font, so its screenshots show the Chinese labels).
CJK_FONT     := /usr/share/fonts/truetype/wqy/wqy-microhei.ttc
SYSTEM_TOOLS := /usr/bin/promtool /usr/bin/prometheus /usr/bin/chromium /usr/bin/chromedriver \
                $(CJK_FONT)

$(SYSTEM_TOOLS):
	@command -v apt-get >/dev/null || { echo "install prometheus, chromium, chromium-driver and a CJK font"; exit 1; }
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -q --no-install-recommends \
		prometheus chromium chromium-driver fonts-wqy-microhei >/dev/null || { \
		$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -q >/dev/null && \
		$(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -q --no-install-recommends \
		prometheus chromium chromium-driver fonts-wqy-microhei >/dev/null; }

tools: $(SYSTEM_TOOLS) ## the Debian packages the tests drive (prometheus, chromium, a CJK font)

#: The suite's files run in TEST_WORKERS processes (pytest-xdist; a file stays in one, as
#: its module-scoped hub needs: chDB opens one warehouse per process). 0 runs them in this one.
TEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

test: $(STAMP) tools lint ## set up, lint, and run every test (unit and integration)
	$(BIN)/pytest -q $(XDIST)

unit: $(STAMP) ## only the unit tests (start nothing)
	$(BIN)/pytest -q tests/unit

.PHONY: fuzz
fuzz: $(STAMP) ## the bad-input campaign at length: 50x the Hypothesis examples, 5 min of atheris
	HYPOTHESIS_PROFILE=campaign $(BIN)/pytest -q tests/unit/test_fuzz_*.py

integration: $(STAMP) tools ## only the integration tests (real Tansu, chDB, PostgreSQL)
	$(BIN)/pytest -q $(XDIST) tests/integration

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/mypy

BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP) ## every benchmark in one go (MLLP intake vs python-hl7 and librdkafka; EMPI on a synthetic population and FEBRL4 vs Splink; the stream stage and alert latency; end to end with peak RSS; a 30-minute soak, SOAK_SECONDS=0 leaves it out): bench/results/latest.json
	$(BIN)/python -m tests.bench

clean: ## remove the virtualenv and embedded state
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
