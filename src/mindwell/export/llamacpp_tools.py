"""llama.cpp's own conversion tools: the HF-to-GGUF and LoRA-to-GGUF converters, and quantize.

No PyPI wheel ships them, but the llama-cpp-python source distribution vendors the whole
llama.cpp tree. mindwell fetches that sdist once through pip (so pip's index, mirror and
certificate settings apply), keeps the tree in its tools cache, runs the Python converters
with the tree's own ``gguf-py`` (newer than the released ``gguf`` package and matched to the
converter), and compiles only the ``llama-quantize`` tool when a k-quant is asked for.
The pin keeps conversions reproducible; ``MINDWELL_LLAMA_CPP`` points at any llama.cpp
checkout instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from mindwell.errors import MindwellError
from mindwell.export.progress import step
from mindwell.paths import cache_dir

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
CHECKOUT_ENV = "MINDWELL_LLAMA_CPP"
TOOLS_ENV = "MINDWELL_TOOLS"

# What the converter can write itself (gguf-py quantizes these in Python); every other type
# is made from the f16 file by llama-quantize.
CONVERTER_TYPES = {"f32", "f16", "bf16", "q8_0"}
QUANTIZE_TYPES = {
    "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m",
    "q5_k_s", "q5_k_m", "q6_k",
}
KNOWN_TYPES = CONVERTER_TYPES | QUANTIZE_TYPES
# Block types gguf-py can also quantize in Python: made that way when no llama-quantize is
# built, so they need no compiler (k-quants do).
PYTHON_QUANTIZE_TYPES = {"q4_0", "q4_1", "q5_0", "q5_1"}


def tools_dir() -> Path:
    explicit = os.environ.get(TOOLS_ENV)
    return Path(explicit).expanduser() if explicit else cache_dir() / "tools"


def check_types(types: list[str]) -> list[str]:
    """Lower-cased quantization names, or a clear error naming the unknown one."""
    normalized = [t.strip().lower() for t in types if t.strip()]
    unknown = [t for t in normalized if t not in KNOWN_TYPES]
    if unknown:
        raise MindwellError(
            f"Unknown quantization type '{unknown[0]}'.",
            "Use any of: " + ", ".join(sorted(KNOWN_TYPES)) + " (e.g. --quant f16,q8_0,q4_k_m).",
        )
    if not normalized:
        raise MindwellError("No quantization type given.", "Example: --quant f16,q4_k_m")
    return normalized


def llama_cpp_dir() -> Path:
    """The llama.cpp tree with the converters, fetched once if needed."""
    explicit = os.environ.get(CHECKOUT_ENV)
    if explicit:
        root = Path(explicit).expanduser()
        if not (root / "convert_hf_to_gguf.py").exists():
            raise MindwellError(
                f"{CHECKOUT_ENV}={root} is not a llama.cpp checkout (no convert_hf_to_gguf.py).",
                f"Point it at a llama.cpp source tree, or unset it to let mindwell fetch "
                f"llama-cpp-python {LLAMA_CPP_PYTHON_VERSION}'s copy.",
            )
        return root
    root = tools_dir() / f"llama.cpp-{LLAMA_CPP_PYTHON_VERSION}"
    if (root / "convert_hf_to_gguf.py").exists():
        return root
    return _fetch_sdist(root)


def _fetch_sdist(root: Path) -> Path:
    spec = f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"
    with tempfile.TemporaryDirectory() as download, step(
        f"Fetching llama.cpp's converter once ({spec} source, about 75 MB)"
    ):
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", spec, "--no-deps", "--no-binary",
             ":all:", "--quiet", "-d", download],
            capture_output=True, text=True,
        )
        archives = list(Path(download).glob("*.tar.gz"))
        if result.returncode != 0 or not archives:
            raise MindwellError(
                f"Could not download {spec} to get llama.cpp's converter: "
                f"{(result.stderr or result.stdout).strip()[-400:]}",
                f"Check that pip can reach its package index, or set {CHECKOUT_ENV} to a local "
                "llama.cpp checkout.",
            )
        partial = root.with_name(root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/"
        with tarfile.open(archives[0]) as archive:
            members = []
            for member in archive.getmembers():
                if member.name.startswith(prefix) and len(member.name) > len(prefix):
                    member.name = member.name[len(prefix):]
                    members.append(member)
            archive.extractall(partial, members=members, filter="data")
        partial.replace(root)
    return root


def _run(command: list[str], what: str, env: dict | None = None) -> None:
    with step(what):
        result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-12:])
        raise MindwellError(f"{what} failed:\n{tail}")


def _converter_env() -> dict:
    # The converters put the tree's own gguf-py ahead of the installed gguf release (which
    # is older than the converter needs) unless NO_LOCAL_GGUF is set, so never pass it on.
    return {key: value for key, value in os.environ.items() if key != "NO_LOCAL_GGUF"}


def convert_checkpoint(checkpoint: Path, outfile: Path, outtype: str) -> Path:
    """A Hugging Face checkpoint directory to one GGUF file of ``outtype``."""
    root = llama_cpp_dir()
    _run(
        [sys.executable, str(root / "convert_hf_to_gguf.py"), str(checkpoint),
         "--outtype", outtype, "--outfile", str(outfile)],
        f"Converting to {outtype} GGUF with llama.cpp's convert_hf_to_gguf.py",
        env=_converter_env(),
    )
    return outfile


def convert_lora(adapter_dir: Path, base_dir: Path, outfile: Path) -> Path:
    """A PEFT LoRA adapter to a GGUF adapter for llama.cpp's ``--lora``."""
    root = llama_cpp_dir()
    _run(
        [sys.executable, str(root / "convert_lora_to_gguf.py"), str(adapter_dir),
         "--base", str(base_dir), "--outtype", "f16", "--outfile", str(outfile)],
        "Converting the LoRA adapter with llama.cpp's convert_lora_to_gguf.py",
        env=_converter_env(),
    )
    return outfile


def _build_dir() -> Path:
    if os.environ.get(CHECKOUT_ENV):
        return Path(os.environ[CHECKOUT_ENV]).expanduser() / "build"
    return tools_dir() / f"llama.cpp-{LLAMA_CPP_PYTHON_VERSION}-build"


def built_quantize_binary() -> Path | None:
    """llama-quantize if it is built already (or on PATH), without building it."""
    for candidate in (_build_dir() / "bin" / "llama-quantize", shutil.which("llama-quantize")):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


def quantize_binary() -> Path:
    """llama.cpp's llama-quantize, compiled once from the fetched tree (a few minutes)."""
    root = llama_cpp_dir()
    build = _build_dir()
    built = built_quantize_binary()
    if built is not None:
        return built
    missing = [tool for tool in ("cmake", "c++") if shutil.which(tool) is None]
    if missing:
        raise MindwellError(
            f"k-quants need llama.cpp's llama-quantize; building it needs "
            f"{' and '.join(missing)}.",
            "Install a compiler and CMake (Debian: apt install cmake g++), put an existing "
            "llama-quantize on PATH, or export only f16/q8_0 (--quant f16,q8_0).",
        )
    jobs = str(os.cpu_count() or 2)
    _run(
        ["cmake", "-S", str(root), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
         "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
         "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DBUILD_SHARED_LIBS=OFF",
         "-DGGML_OPENMP=OFF"],
        "Configuring llama.cpp's quantize tool (once)",
    )
    _run(
        ["cmake", "--build", str(build), "--target", "llama-quantize", "-j", jobs],
        "Compiling llama-quantize (once; about 5 minutes on 2 cores)",
    )
    return build / "bin" / "llama-quantize"


def quantize(source: Path, target: Path, qtype: str) -> Path:
    """``source`` (the stamped f16 GGUF) quantized to ``qtype``: with llama-quantize, or in
    Python for the block types gguf-py knows when llama-quantize is not built."""
    if qtype in PYTHON_QUANTIZE_TYPES and built_quantize_binary() is None:
        with step(f"Quantizing to {qtype} with gguf-py (llama-quantize is not built)"):
            return quantize_in_python(source, target, qtype)
    _run(
        [str(quantize_binary()), str(source), str(target), qtype.upper()],
        f"Quantizing to {qtype} with llama-quantize",
    )
    return target


def quantize_in_python(source: Path, target: Path, qtype: str) -> Path:
    """Every weight matrix of ``source`` whose rows split into whole blocks becomes
    ``qtype`` (gguf-py's port of llama.cpp's reference rounding); the token embedding (also
    the output matrix of tied models, which llama-quantize keeps at q6_k) and every vector
    stay as they are. Metadata is copied, with the new file type."""
    import gguf
    import numpy as np

    kind = gguf.GGMLQuantizationType[qtype.upper()]
    block = gguf.GGML_QUANT_SIZES[kind][0]
    file_type = {"q4_0": gguf.LlamaFileType.MOSTLY_Q4_0, "q4_1": gguf.LlamaFileType.MOSTLY_Q4_1,
                 "q5_0": gguf.LlamaFileType.MOSTLY_Q5_0,
                 "q5_1": gguf.LlamaFileType.MOSTLY_Q5_1}[qtype]
    reader = gguf.GGUFReader(str(source))
    architecture = reader.fields["general.architecture"].contents()
    partial = target.with_name(target.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), arch=architecture, endianess=reader.endianess)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        if field.name == gguf.Keys.General.FILE_TYPE:
            writer.add_file_type(int(file_type))
            continue
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)
    written = []
    for tensor in reader.tensors:
        data, raw_type = tensor.data, tensor.tensor_type
        floats = raw_type in (gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.F32)
        if (floats and data.ndim == 2 and data.shape[-1] % block == 0
                and tensor.name not in ("token_embd.weight", "output.weight")):
            data, raw_type = gguf.quants.quantize(np.asarray(data, dtype=np.float32), kind), kind
        writer.add_tensor_info(tensor.name, data.shape, data.dtype, data.nbytes, raw_type)
        written.append(data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for data in written:
        writer.write_tensor_data(data, tensor_endianess=reader.endianess)
    writer.close()
    del reader
    partial.replace(target)
    return target
