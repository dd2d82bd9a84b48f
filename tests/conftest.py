"""Fixtures for every test.  Shared helpers live in tests/support.py."""
