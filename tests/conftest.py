"""Fixtures for every test.  Shared helpers live in tests/support.py."""
from __future__ import annotations

import pytest

from support import left_behind, snapshot


@pytest.fixture
def no_leftovers():
    """Assert the test leaves no namespace, UML process, ledger or control dir behind."""
    before = snapshot()
    yield before
    new = left_behind(before)
    assert not new, f"left behind: {new}"
