"""Lab tests: real namespaces, real qdiscs, real UML guests.  They need root (``sudo
make test`` runs them); they fail, not skip, without it."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _need_root():
    assert os.geteuid() == 0, "lab tests build namespaces and need root: run `sudo make test`"
