# The two set-up commands (README): `make demo` and `make test`. Everything else is a helper.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the test suite drives for real: PostgreSQL (sequencing store), SoftHSM2 (PKCS#11 keys),
# bubblewrap, diffoscope, faketime, gcc and python3 (the build sandbox and its checks), ClamAV (interop),
# nginx (serves public/ to the endpoint agent).
DEB_PACKAGES := postgresql softhsm2 bubblewrap diffoscope-minimal faketime gcc libc6-dev python3 clamav \
	clamav-testfiles nginx

.PHONY: demo test lint venv deps bench clean

$(BIN)/overt: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/overt

demo: venv
	@bash .ci/debian-deps bubblewrap python3 nginx
	$(BIN)/overt demo $(if $(HOME_DIR),--home $(HOME_DIR),)

deps:
	@bash .ci/debian-deps $(DEB_PACKAGES)

# The suite runs in $(TEST_WORKERS) processes (pytest-xdist); TEST_WORKERS=0 runs it in this one.
TEST_WORKERS ?= 2

test: venv deps
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: venv deps
	$(BIN)/python -m benchmarks.log
	$(BIN)/python -m benchmarks.sign
	$(BIN)/python -m benchmarks.build
	$(BIN)/python -m benchmarks.avdb
	$(BIN)/python -m benchmarks.update

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
