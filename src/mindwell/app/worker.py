"""One model instance, many requests: a FIFO queue in front of the backend.

``QueuedBackend`` wraps any backend and is itself a ``Backend``, so ``ChatSession`` and the
compatible routes use it unchanged. One worker thread owns the model and runs one job at a
time (llama.cpp contexts are not thread-safe, and on a small CPU interleaving requests only
slows every one of them). A request waiting in the queue is not dropped; a client that goes
away cancels its job, queued or running.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field

from mindwell.inference.base import Backend, GenerationStats, Message, SamplingParams

_DONE = object()


@dataclass
class _Job:
    run: Callable[[Callable[[str], None], threading.Event], object]
    output: queue.Queue = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)


class QueuedBackend(Backend):
    def __init__(self, inner: Backend) -> None:
        super().__init__()
        self.inner = inner
        self.name = inner.name
        self.context_length = inner.context_length
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._waiting = 0
        self._count_lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="mindwell-model", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        """Jobs waiting or running (for /healthz and the logs)."""
        return self._waiting

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                if not job.cancelled.is_set():
                    result = job.run(job.output.put, job.cancelled)
                    job.output.put((_DONE, result, None))
                else:
                    job.output.put((_DONE, None, None))
            except BaseException as err:  # handed to the waiting request
                job.output.put((_DONE, None, err))
            finally:
                with self._count_lock:
                    self._waiting -= 1

    def _submit(self, run) -> _Job:
        job = _Job(run)
        with self._count_lock:
            self._waiting += 1
        self._jobs.put(job)
        return job

    def _results(self, job: _Job) -> Iterator[str]:
        """Pieces of a job as they come; the job's return value ends the iteration."""
        try:
            while True:
                item = job.output.get()
                if isinstance(item, tuple) and item and item[0] is _DONE:
                    _, result, error = item
                    if error is not None:
                        raise error
                    return result
                yield item
        finally:
            job.cancelled.set()  # the consumer stopped early (client gone): stop the model

    def _stream(self, messages: list[Message], params: SamplingParams) -> Iterator[str]:
        stats = yield from self.stream_with_stats(messages, params)
        if stats is not None:
            self.last_stats = stats

    def stream_with_stats(self, messages: list[Message], params: SamplingParams
                          ) -> Generator[str, None, GenerationStats | None]:
        """The pieces; the generation's own stats are the return value (None if it was
        stopped), safe from requests that run after it."""

        def run(emit, cancelled):
            pieces = self.inner._stream(messages, params)
            try:
                for piece in pieces:
                    if cancelled.is_set():
                        return None
                    emit(piece)
            finally:
                pieces.close()
            return copy.deepcopy(self.inner.last_stats)

        return (yield from self._results(self._submit(run)))

    def call(self, function: Callable[[], object]) -> object:
        """Run ``function`` on the model thread (e.g. tokenizing) and return its result."""
        job = self._submit(lambda emit, cancelled: function())
        results = self._results(job)
        try:
            while True:
                next(results)
        except StopIteration as stop:
            return stop.value

    def count_tokens(self, messages: list[Message]) -> int:
        return self.call(lambda: self.inner.count_tokens(messages))

    def prompt_bytes(self, messages: list[Message]) -> int | None:
        return self.inner.prompt_bytes(messages)  # pure template rendering: thread-safe

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=10)
        self.inner.close()
