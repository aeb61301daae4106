# Archipel — the two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= data
PORT ?= 8000
DEMO_PORT ?= 8101
STAMP := $(VENV)/.installed
#: pytest-xdist workers; the tests of one module that starts real processes run on one of them
#: (federation_tests/conftest.py makes the units of work)
TEST_WORKERS ?= 2

.PHONY: run demo test check fedify-peer bovine-peer lint install clean

# uv installs the project (pip only installs uv): the same packages from the same index,
# resolved and unpacked in seconds where pip takes half a minute.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

## make run: a demo chamber on SQLite at http://127.0.0.1:$(PORT) (data in ./$(DATA))
run: $(STAMP)
	@umask 077; if [ ! -f $(DATA)/archipel.toml ]; then \
	  $(BIN)/archipel init --data-dir $(DATA) --url http://127.0.0.1:$(PORT) \
	    --name "Chambre des communs (démo)" \
	    --description "Une chambre de démonstration d'Archipel." \
	    --allow-private-addresses --admin marie \
	    --admin-password-file $(DATA)/admin-login.txt; \
	fi
	@echo "Administrator login ($(DATA)/admin-login.txt):"; sed 's/^/  /' $(DATA)/admin-login.txt
	@echo "Open http://127.0.0.1:$(PORT)/"
	$(BIN)/archipel serve --data-dir $(DATA) --host 127.0.0.1 --port $(PORT)

## make demo: three federated chambers (Lille, Gand, Roubaix) on 127.0.0.1:8101-8103 (DEMO_PORT=N:
## N to N+2) with members, bricks and exchanges, until Ctrl-C; ./demo-data is rebuilt at each
## start (DEMO_ARGS=--keep restarts the chambers already there)
demo: $(STAMP)
	$(BIN)/python -m demo.archipelago --base-port $(DEMO_PORT) $(DEMO_ARGS)

## make test: lint, type-check and run every test (PostgreSQL ones when ARCHIPEL_TEST_POSTGRES_URL is set)
## (the interop peers install while the project is checked: the first is mostly waiting on
## the network, the second on the processor)
# Python keeps its compiled modules (__pycache__) during the tests even where the environment
# says not to (PYTHONDONTWRITEBYTECODE): each test process, node and command would otherwise
# compile every module it imports again, about a second of CPU each.
test: export PYTHONDONTWRITEBYTECODE =
test: $(STAMP)
	@$(MAKE) --no-print-directory -j3 fedify-peer bovine-peer check
	@$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no test"; exit 0; fi; exit $$status

check: $(STAMP)
	$(BIN)/ruff check node tests federation_tests bench demo
	$(BIN)/ruff format --check node tests federation_tests bench demo
	$(BIN)/mypy node demo

fedify-peer:
	@bash federation_tests/fedify_peer/install.sh >/dev/null || \
	  echo "warning: the Fedify peer could not be installed; its interop tests will be skipped"

bovine-peer:
	@UV=$(CURDIR)/$(BIN)/uv bash federation_tests/bovine_peer/install.sh >/dev/null || \
	  echo "warning: the bovine peer could not be installed; its interop test will be skipped"

lint: $(STAMP)
	$(BIN)/ruff check node tests federation_tests bench demo
	$(BIN)/mypy node demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
