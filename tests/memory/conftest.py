"""Storage fixtures: every test of ``store`` runs on SQLite and on a real PostgreSQL with
pgvector (one throwaway cluster per test session, a fresh database per test)."""

from __future__ import annotations

import pytest

from mindwell.memory.store import Store
from tests.postgres import fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def store_target(backend, request, tmp_path):
    """What ``Store.open`` takes: a data directory for SQLite, the URL of a new, empty
    database for PostgreSQL (dropped after the test)."""
    if backend == "sqlite":
        yield tmp_path / "data"
    else:
        with fresh_database(request.getfixturevalue("postgres_url")) as url:
            yield url


@pytest.fixture
def store(store_target):
    opened = Store.open(store_target)
    yield opened
    opened.close()
