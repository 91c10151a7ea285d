"""Where mindwell keeps files it derives (assembled GGUFs, converted checkpoints).

Order of precedence: the ``--cache-dir`` flag (which sets ``MINDWELL_CACHE``), the
``MINDWELL_CACHE`` environment variable, then ``$XDG_CACHE_HOME/mindwell`` or
``~/.cache/mindwell``.
"""

import os
from pathlib import Path

CACHE_ENV = "MINDWELL_CACHE"


def cache_dir() -> Path:
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mindwell"


def models_dir() -> Path:
    return cache_dir() / "models"


DATA_ENV = "MINDWELL_DATA"


def data_dir() -> Path:
    """Where `mindwell serve` keeps people's data: ``--data-dir``, ``MINDWELL_DATA``, then
    ``$XDG_DATA_HOME/mindwell`` or ``~/.local/share/mindwell`` (never the cache, which
    users clear without thinking of diaries)."""
    explicit = os.environ.get(DATA_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "mindwell"
