# bcsync: every set-up step a fresh machine needs is here.
#   make run    full sync of the sample company on the local stack (Azurite + simulators)
#   make test   the test suite
#   make up / make down   start / stop the local stack in the background (documented ports)
#   make bench  benchmarks (speed, memory, webhook latency)
#   make soak   faults, killed workers and duplicate messages at volume: nothing lost or duplicated (not in make test)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCAL  := .local

.PHONY: setup test run up down seed bench soak clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(STAMP) node_modules/.installed

test: setup
	$(BIN)/pytest -n 3 --dist loadfile

up: setup
	@$(MAKE) --no-print-directory down >/dev/null
	@mkdir -p $(LOCAL)
	@nohup $(BIN)/python -m simulators serve --folder $(LOCAL) > $(LOCAL)/stack.log 2>&1 & echo $$! > $(LOCAL)/stack.pid
	@for i in $$(seq 1 120); do test -f $(LOCAL)/ready && break; sleep 0.5; done; \
	 test -f $(LOCAL)/ready || { echo "local stack did not start; see $(LOCAL)/stack.log"; cat $(LOCAL)/stack.log; exit 1; }
	@echo "local stack up: settings in local.settings.json, endpoints in $(LOCAL)/stack.json"

down:
	@if test -f $(LOCAL)/stack.pid; then kill $$(cat $(LOCAL)/stack.pid) 2>/dev/null || true; \
	 for i in $$(seq 1 40); do kill -0 $$(cat $(LOCAL)/stack.pid) 2>/dev/null || break; sleep 0.25; done; \
	 rm -f $(LOCAL)/stack.pid $(LOCAL)/ready; echo "local stack down"; fi

seed: setup
	$(BIN)/python -m simulators seed-sample --folder $(LOCAL)

run: up
	$(BIN)/python -m simulators seed-sample --folder $(LOCAL)
	@# the sample company's configuration templates give what is created in Business Central its posting groups
	$(BIN)/bcsync mappings set CUSTOMER --template-code BCICUST >/dev/null
	$(BIN)/bcsync mappings set ITEM-PRODUCT --template-code BCIITEM >/dev/null
	$(BIN)/bcsync mappings set RESOURCE-PRODUCT --template-code BCIRES >/dev/null
	$(BIN)/bcsync fullsync --wait
	$(BIN)/python -m simulators seed-orders --folder $(LOCAL)
	BCSYNC_AUTO_CREATE_SALES_ORDERS=true $(BIN)/bcsync sync --mapping SALESORDER-ORDER --wait
	@echo "The stack is still up: try 'bcsync status', edit data, 'bcsync sync --wait'; 'make down' stops it."

bench: setup
	$(BIN)/python -m benchmarks

soak: setup
	$(BIN)/python -m benchmarks.soak
	BCSYNC_HYPOTHESIS_PROFILE=soak $(BIN)/python -m pytest -q tests/property

clean: down
	rm -rf $(VENV) node_modules $(LOCAL) local.settings.json

# Bicep checks (tests/infra): checkov in its own pinned virtual environment, apart from the project's
# packages (inside .venv, so that git, the deployment package and `make clean` leave it out with it);
# `make test` installs it.
INFRA_VENV  := $(VENV)/infra
INFRA_STAMP := $(INFRA_VENV)/.installed

$(INFRA_STAMP): tests/infra/requirements-checkov.txt
	test -x $(INFRA_VENV)/bin/python || $(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/infra/requirements-checkov.txt
	touch $(INFRA_STAMP)

.PHONY: infra-tools
infra-tools: $(INFRA_STAMP)
test: $(INFRA_STAMP)

# The browser tests (tests/browser) drive Debian's Chromium through its chromedriver; both are installed here when
# missing (as root, which this machine and CI are), so that no driver is ever downloaded.
.PHONY: chromium
chromium:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { \
	 test "$$(id -u)" = 0 || { echo "the browser tests need Chromium: sudo apt-get install chromium chromium-driver"; \
	 exit 1; }; \
	 apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	 chromium chromium-driver >/dev/null; }
setup: chromium
