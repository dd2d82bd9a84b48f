# wirelab entry points. The README's two commands: `sudo make demo` and `sudo make test`.
# Every target that needs the virtualenv provisions first; provisioning is idempotent and
# takes about a second when there is nothing to change.

VENV := .venv
PROVISION := bash scripts/provision.sh

.PHONY: setup setup-test demo test test-unit test-debian13 lint bench clean docs gallery

setup:
	$(PROVISION)

setup-test:
	$(PROVISION) --with-test-tools

# The flagship is the URL journey; a measured deviation (exit 1) is a result the
# summary explains, not a failure of the demo.
demo: setup
	$(VENV)/bin/wirelab doctor
	$(VENV)/bin/wirelab run tcp_handshake
	$(VENV)/bin/wirelab run url_journey --quick || [ $$? -eq 1 ]

# Lint and types first (seconds), then every test: unit (no root), lab and platform; then
# the Debian 13 lane.
test: setup-test lint
	$(VENV)/bin/python -m pytest -ra tests --durations=80
	$(DEBIAN13_LANE)

# The root-free lane: unit tests only, under a minute.
test-unit: setup-test lint
	$(VENV)/bin/python -m pytest -ra -m "not lab" tests

# The Debian 13 lane (root): in a debootstrap'd Debian 13 root cached outside the clone
# (WIRELAB_DEBIAN13_ROOT, default /var/cache/wirelab/debian13-root), provisioning, the unit
# tests under Python 3.13 and `wirelab run pooling --quick` on Debian 13's UML 6.12.
DEBIAN13_LANE := bash scripts/debian13-root.sh

test-debian13: setup-test
	$(DEBIAN13_LANE)

lint: setup-test
	$(VENV)/bin/ruff check wirelab experiments topologies controllers tests benchmarks
	$(VENV)/bin/mypy

bench: setup
	$(VENV)/bin/python benchmarks/setup_bench.py
	$(VENV)/bin/wirelab exec --kernel uml -- $(VENV)/bin/python benchmarks/setup_bench.py
	$(VENV)/bin/python benchmarks/up_bench.py
	$(VENV)/bin/wirelab exec --kernel uml -- $(VENV)/bin/python benchmarks/netem_timing.py
	WIRELAB_UML_IDLE=sleep $(VENV)/bin/wirelab exec --kernel uml -- $(VENV)/bin/python benchmarks/netem_timing.py

clean:
	$(VENV)/bin/wirelab clean

# The claims catalog, generated from experiments/claims.toml and the experiments.
docs: setup
	$(VENV)/bin/wirelab list --markdown > docs/claims.md

# Every experiment's figure from the stored quick runs, on one page.
gallery: setup
	$(VENV)/bin/wirelab gallery tests/data/runs --out docs/figures --page docs/figures.md
