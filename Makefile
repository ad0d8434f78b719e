# Meterwise: `make run` (portal on SQLite with demo data) and `make test` (real PostgreSQL, Redis, Mosquitto).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask
STAMPS := .make
HOST ?= 127.0.0.1
PORT ?= 5000
export FLASK_APP := wsgi

.PHONY: run test worker ingest modbus deps assets browser db-upgrade bench lint clean translations messages

run: deps assets translations instance/secret_key
	$(FLASK) db upgrade
	$(FLASK) seed-demo --if-empty
	@$(PY) -m tests.emulators & EMULATORS=$$!; trap "kill $$EMULATORS 2>/dev/null" EXIT INT TERM; \
	  SECRET_KEY=$$(cat instance/secret_key) WEBHOOKS_ALLOW_PRIVATE_TARGETS=$${WEBHOOKS_ALLOW_PRIVATE_TARGETS:-1} $(FLASK) run --host $(HOST) --port $(PORT)

# Both cores: one test database per worker (tests/conftest.py), a test file stays on one worker.
test: deps assets browser translations
	$(PY) -m pytest -n $(or $(TEST_WORKERS),2) --dist loadfile

worker: deps
	$(PY) workers/worker.py

# MQTT ingest; WORKERS=n runs n workers on one shared subscription.
ingest: deps
	@n=$(or $(WORKERS),1); if [ "$$n" -le 1 ]; then exec $(PY) workers/mqtt_ingest.py; fi; trap 'kill 0' INT TERM; \
	  for i in $$(seq 1 $$n); do MQTT_SHARED=1 MQTT_CLIENT_ID=meterwise-ingest-shared-$$i $(PY) workers/mqtt_ingest.py & done; wait

# Modbus/RS485 poller (M9); MAP=path overrides MODBUS_MAP_PATH (default instance/modbus.toml).
modbus: deps
	$(PY) workers/modbus_poller.py $(MAP)

bench: deps
	$(PY) bench/ledger.py

deps: $(STAMPS)/deps
$(STAMPS)/deps: requirements.txt requirements-dev.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@mkdir -p $(STAMPS) && touch $@

# Front-end libraries come from npm; static/vendor is never committed.
assets: static/vendor/htmx.min.js static/vendor/chart.umd.min.js
static/vendor/htmx.min.js static/vendor/chart.umd.min.js &: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js node_modules/chart.js/dist/chart.umd.min.js static/vendor/

# Message catalogues (X8): the .po files are committed, the .mo files compiled from them here.
MO_FILES := $(patsubst %.po,%.mo,$(wildcard translations/*/LC_MESSAGES/messages.po))
translations: $(MO_FILES)
translations/%/LC_MESSAGES/messages.mo: translations/%/LC_MESSAGES/messages.po | deps
	$(VENV)/bin/pybabel compile --statistics -l $* -i $< -o $@

# After wrapping new strings: refresh the template and each catalogue, then translate the new entries.
messages: deps
	$(VENV)/bin/pybabel extract -F babel.cfg --no-location --sort-output -k N_ -k _l -o translations/messages.pot app templates
	$(VENV)/bin/pybabel update --no-fuzzy-matching -i translations/messages.pot -d translations

# Browser tests drive Debian's chromium; never a downloaded browser.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Install Debian's chromium (apt-get install chromium) for the browser tests" >&2; exit 1; fi; }

instance/secret_key:
	@mkdir -p instance
	@$(PY) -c "import secrets; print(secrets.token_hex(32))" > $@

clean:
	rm -rf $(VENV) $(STAMPS) node_modules static/vendor instance
