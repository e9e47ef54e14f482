# dnsfailover: `make test` and `make demo` work on a fresh Debian 12 machine as root.

VENV        := .venv
PY          := $(VENV)/bin/python
# Debian packages the lab and the tests need (see LAB.md); installed when missing.
APT_PACKAGES := pebble bind9 bind9-utils bind9-dnsutils openssl iproute2 util-linux systemd \
                prometheus unbound lego certbot etcd-server etcd-client nftables \
                knot pdns-server pdns-backend-sqlite3
# and what the benchmarks add (bench/): many-port HTTPS targets and the reference prober.
BENCH_PACKAGES := nginx-light prometheus-blackbox-exporter
LINT_PATHS  := dnsfailover tests lab scripts bench
PARTS       ?=
# pytest-xdist workers, each in a network namespace of its own (tests/conftest.py). The tests
# mostly wait on servers (4 workers keep two cores about 85% busy: 803 tests in 284 s, against
# 338 s with 3); TEST_WORKERS=0: one process.
TEST_WORKERS ?= 4

.PHONY: test demo bench lint unit deps system-deps clean dist deb systemd-check

test: deps lint  ## everything: lint, types, unit and integration tests against real servers
	scripts/isolated $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal

demo: deps  ## a real failover on a lab of real servers (two Pebble CAs, BIND), then teardown
	scripts/isolated $(PY) scripts/demo.py

bench: deps  ## benchmarks (about 85 min): bench/results/*.json and bench/RESULTS.md; PARTS="flap scale" for some
	@scripts/apt-ensure $(BENCH_PACKAGES)
	scripts/isolated $(PY) -m bench $(PARTS)

unit: deps  ## the pure core only, no servers
	$(PY) -m pytest --ignore=tests/integration

dist: deps  ## sdist and wheel in build/dist/; the wheel and every dependency in build/wheelhouse/
	rm -rf build/dist
	$(PY) -m build --outdir build/dist .
	rm -f build/wheelhouse/dnsfailover-*.whl  # pip wheel keeps a file of the same name
	$(PY) -m pip wheel --quiet --disable-pip-version-check --wheel-dir build/wheelhouse build/dist/dnsfailover-*.whl

deb: dist  ## build/deb/dnsfailover_*.deb: a venv in /opt/venvs/dnsfailover built from build/wheelhouse
	@scripts/apt-ensure debhelper dpkg-dev python3-venv
	rm -rf build/deb && mkdir -p build/deb/src
	cp -r debian systemd configs docs README.md build/deb/src/
	cd build/deb/src && WHEELHOUSE=$(CURDIR)/build/wheelhouse dpkg-buildpackage -b --no-sign
	ls -l build/deb/*.deb

systemd-check: deb  ## the .deb in a Debian 12 container booted by systemd-nspawn: start, failover, reload, watchdog, stop
	@scripts/apt-ensure systemd-container mmdebstrap
	scripts/systemd-check.py build/deb/dnsfailover_*.deb

lint: deps
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy dnsfailover
	$(VENV)/bin/lint-imports
	promtool check rules configs/alerts.yaml
	cd configs/alerts-tests && promtool test rules *.yaml
	$(PY) -c "import sys, dnsfailover.policy, dnsfailover.plan; \
	  loaded = [m for m in ('requests', 'urllib3', 'cryptography', 'dns.query') if m in sys.modules]; \
	  sys.exit(f'the pure core loads {loaded} on import' if loaded else 0)"

deps: system-deps $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@python3 -c 'import ensurepip' 2>/dev/null || scripts/apt-ensure python3 python3-venv
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

system-deps:
	@scripts/apt-ensure $(APT_PACKAGES)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
