# Kubento developer commands. `make install` once, then `make serve` / `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SERVICE ?= service:svc
WORKING_DIR ?= examples/quickstart
PORT ?= 3000

.PHONY: install serve test test-unit test-integration test-cluster bench lint format crds proto \
        cluster-bins cluster cluster-down images e2e clean kube-score kube-score-bin

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

serve: install
	$(VENV)/bin/kubento serve $(SERVICE) --working-dir $(WORKING_DIR) --port $(PORT)

test: install cluster-bins
	$(PY) -m pytest -q

test-unit: install
	$(PY) -m pytest -q tests/unit

test-integration: install
	$(PY) -m pytest -q tests/integration

test-cluster: install cluster-bins
	$(PY) -m pytest -q tests/cluster

bench: install
	$(PY) bench/run.py
	$(PY) bench/graph.py

# actionlint: built once with Go into the cache (shellcheck and hadolint come from the dev extra).
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)
ACTIONLINT_VERSION := v1.7.12
ACTIONLINT := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kubento/actionlint-$(ACTIONLINT_VERSION)/actionlint
SHELL_SCRIPTS := .ci/run $(wildcard e2e/*.sh tests/cluster/*.sh)

$(ACTIONLINT):
	GOBIN=$(dir $@) $(GO) install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

# kube-score on what the operator renders for the examples (tests/unit/test_kube_score.py),
# built once with Go into the cache like actionlint.
KUBE_SCORE_VERSION := v1.20.0
KUBE_SCORE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kubento/kube-score-$(KUBE_SCORE_VERSION)/kube-score

$(KUBE_SCORE):
	GOBIN=$(dir $@) $(GO) install github.com/zegl/kube-score/cmd/kube-score@$(KUBE_SCORE_VERSION)

kube-score-bin: $(KUBE_SCORE)

kube-score: install $(KUBE_SCORE)
	$(PY) -m pytest -q tests/unit/test_kube_score.py

lint: install $(ACTIONLINT)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy runtime/kubento operator/kubento_operator
	$(VENV)/bin/shellcheck $(SHELL_SCRIPTS)
	$(ACTIONLINT) -shellcheck $(VENV)/bin/shellcheck
	$(VENV)/bin/hadolint Dockerfile.runtime examples/*/Dockerfile e2e/slow/Dockerfile

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

proto: install
	$(PY) -m grpc_tools.protoc -I runtime --python_out=runtime --pyi_out=runtime \
		runtime/kubento/_proto/runner.proto

crds: install
	$(VENV)/bin/kubento-operator crds --output crds --readme README.md
	cp crds/*.yaml charts/kubento-operator/crds/

cluster-bins:
	bash tests/cluster/bins.sh

cluster: install cluster-bins
	$(PY) tests/cluster/controlplane.py up

cluster-down: install
	$(PY) tests/cluster/controlplane.py down

# The runtime, operator and example images (a debootstrap Python base where none can be pulled).
images:
	bash e2e/images.sh

# kind end to end: starts a docker engine if none runs, builds what cannot be pulled (cached).
e2e:
	bash e2e/run.sh

clean:
	rm -rf $(VENV) .kubento .pytest_cache .mypy_cache .ruff_cache
