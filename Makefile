# Everyday jobs. Each target creates/uses the local venv in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-quick lint demo bench fidelity mutate clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e ".[test,lint]"
	touch $(STAMP)

# The whole suite with branch coverage of the package (the floor is in pyproject.toml).
test: $(STAMP)
	$(BIN)/python -m pytest -q --cov --cov-report=term

# Without the tests that start servers, browsers or subprocesses to kill (a minute).
test-quick: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not browser"

lint: $(STAMP)
	$(BIN)/ruff check flask_fitstiles tests example_app benchmarks
	$(BIN)/ruff format --check flask_fitstiles tests example_app benchmarks
	$(BIN)/mypy

demo: $(STAMP)
	$(BIN)/gunicorn -c example_app/gunicorn.conf.py "example_app:create_app()"

# Load, preparation and per-tile benchmarks (benchmarks/); BENCH_PEER=1 also runs the
# reference server (VisiOmatic 3.0.7, own venv). Images and results go to bench-data/.
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/micro.py

# Mutation testing (mutmut, configured in pyproject.toml) of core/, iip.py and the
# views against the fast tests; not part of `make test`. Results stay in mutants/:
# `mutmut results` lists the survivors, `mutmut show NAME` one mutant. Arguments
# narrow the run, e.g. make mutate MUTANTS='flask_fitstiles.core.render*'.
mutate: $(STAMP)
	$(BIN)/pip install -q "mutmut>=3.3"
	$(BIN)/mutmut run $(MUTANTS)
	$(BIN)/mutmut results

# Side by side with the reference server on the same images: every IIP command and
# rendering parameter, decoded and compared (its venv as for BENCH_PEER=1 make bench).
fidelity: $(STAMP)
	$(BIN)/python benchmarks/fidelity.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
