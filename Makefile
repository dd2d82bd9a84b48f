# wirelab entry points. The README's two commands: `sudo make demo` and `sudo make test`.
# Every target that needs the virtualenv provisions first; provisioning is idempotent and
# takes about a second when there is nothing to change.

VENV := .venv
PROVISION := bash scripts/provision.sh

.PHONY: setup setup-test demo test bench clean docs lint

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

test: setup-test
	$(VENV)/bin/python -m pytest -ra tests

bench: setup
	$(VENV)/bin/python benchmarks/setup_bench.py
	$(VENV)/bin/wirelab exec --kernel uml -- $(VENV)/bin/python benchmarks/setup_bench.py

clean:
	$(VENV)/bin/wirelab clean

# The claims catalog, generated from experiments/claims.toml and the experiments.
docs: setup
	$(VENV)/bin/wirelab list --markdown > docs/claims.md
