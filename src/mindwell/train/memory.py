"""Return freed memory to the system during CPU training (Linux glibc only).

glibc raises its mmap threshold after every large free, up to 32 MB, so the many
1-30 MB activation and logit buffers of a training step end up on the heap and stay in the
process after they are freed: peak RSS grows by gigabytes that nothing uses.
``TrimHeapCallback`` hands the free heap back after every optimizer step with
``malloc_trim``. Measured in benchmarks/train_throughput.py.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache

from transformers import TrainerCallback


@cache
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "malloc_trim") else None
    except OSError:  # musl and other libcs have no malloc_trim
        return None


def trim_heap() -> bool:
    """Give free heap memory back to the system; False where that is not possible."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


def _trim_after_layer(module, inputs, output) -> None:
    trim_heap()  # returns None: a forward hook's return value would replace the output


class TrimHeapCallback(TrainerCallback):
    """Trims after every decoder layer runs (forward and its recompute under activation
    checkpointing) and after every step, so freed buffers never pile up within a step."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        from transformers.modeling_layers import GradientCheckpointingLayer

        if model is None or _libc() is None:
            return
        for module in model.modules():
            if isinstance(module, GradientCheckpointingLayer):
                module.register_forward_hook(_trim_after_layer)

    def on_step_end(self, args, state, control, **kwargs):
        trim_heap()

    def on_substep_end(self, args, state, control, **kwargs):
        trim_heap()  # gradient accumulation: between micro-batches too
