# One entry point for every task: make run, make test, make bench.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
E2E := tests/e2e
CONTRACT := tests/contract
export FLASK_APP := wsgi
export REGISTRY_COMPANY_NAME ?= Ferncastle Teamworks

.PHONY: run test lint pytest contract bench services browser clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The demo's working webhook endpoint is the development receiver on 127.0.0.1 (over http).
run: export REGISTRY_ENDPOINTS_ALLOW_PRIVATE ?= 1
run: $(VENV)/.installed
	$(BIN)/flask db upgrade
	$(BIN)/flask demo load --if-empty
	$(BIN)/flask demo credentials
	@echo "Mail goes to instance/outbox/ (the staff Mailbox shows it); the worker runs beside the site."
	# The worker is restarted whenever it exits (as systemd's Restart=always would), 5 s later.
	trap 'kill 0' INT TERM EXIT; \
	while :; do $(BIN)/flask notices dispatch; echo "the mail worker exited ($$?); starting it again in 5 s" >&2; sleep 5; done & \
	$(BIN)/flask run --host 127.0.0.1 --port 5000

# Chromium and its driver come from Debian, axe-core and Stoplight Prism from npm; only root can install Chromium here.
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "Browser tests need Debian's Chromium: sudo apt-get install -y chromium chromium-driver"; fi
	@if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; \
	else echo "The static mirror's nginx test needs nginx: sudo apt-get install -y nginx-light"; fi
	@if [ -f $(E2E)/node_modules/axe-core/axe.min.js ]; then :; \
	elif command -v npm >/dev/null; then cd $(E2E) && npm install --no-audit --no-fund --silent; \
	else echo "Accessibility checks need axe-core: install Node.js and npm"; fi
	@if [ -x $(CONTRACT)/node_modules/.bin/prism ]; then :; \
	elif command -v npm >/dev/null; then cd $(CONTRACT) && npm ci --no-audit --no-fund --silent; \
	else echo "The SendGrid contract test needs Stoplight Prism: install Node.js and npm"; fi

# PostgreSQL and Redis (the shared rate-limit test) are started by this kind of machine; start them
# again if they stopped.
services:
	@if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && [ "$$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null; then \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; fi
	@if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && command -v redis-server >/dev/null; then \
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no; fi

lint: $(VENV)/.installed
	$(BIN)/ruff check .

pytest: $(VENV)/.installed
	$(BIN)/pytest

test: $(VENV)/.installed browser services lint pytest

# The API against its own OpenAPI description, as Schemathesis sees it: every phase and check, on both
# databases (pytest runs it within make test; this runs it alone). CI=true derandomizes it.
contract: $(VENV)/.installed services
	$(BIN)/pytest -q $(CONTRACT)/test_api_schemathesis.py

bench: $(VENV)/.installed
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(E2E)/node_modules $(CONTRACT)/node_modules .pytest_cache .ruff_cache
