"""Lab tests: real namespaces, real qdiscs, real UML guests.  They need root (``sudo
make test`` runs them); they fail, not skip, without it."""
from __future__ import annotations

import os

import pytest

from support import left_behind, snapshot


@pytest.fixture(autouse=True)
def _need_root():
    assert os.geteuid() == 0, "lab tests build namespaces and need root: run `sudo make test`"


@pytest.fixture
def no_leftovers():
    """Assert the test leaves no namespace, UML process, ledger or control dir behind."""
    before = snapshot()
    yield before
    new = left_behind(before)
    assert not new, f"left behind: {new}"
