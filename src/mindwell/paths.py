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
