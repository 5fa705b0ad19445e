"""Per-photo work in worker processes: a pool of processes, each holding its own state (a detector), that takes
items one at a time and gives back each result as it comes; a worker that dies is replaced.

    pool = WorkerPool(work, setup=partial(make_detector, 0.5), workers=default_workers())
    for index, result in pool.map(items):      # (index into items, work(state, item, attempt)) in finishing order
        ...                                     # a Crashed where the item killed its worker twice

``setup()`` runs once in each worker and returns its state (closed with its ``close()`` when the worker ends);
``work(state, item, attempt)`` runs for every item (``attempt`` is 1 when the item is tried again after its worker
died). Both, the items and the results must pickle: module-level functions, or :func:`functools.partial` of them.
With ``workers=1`` everything runs in this process, in order, with the same functions: the results are the same.

Workers are started with ``spawn`` (the only start method that is safe beside the threads MediaPipe and OpenCV
start, and the one macOS and Windows have), each limited to one thread of OpenMP, BLAS and OpenCV, so that N
workers use N cores and do not fight over them. An exception raised by ``work`` (a full disk, a bug) stops the run
and is raised here; a worker killed from outside (the out-of-memory killer, a crash inside a native library) is
replaced and its item tried once more, and an item that kills a second worker is given back as :class:`Crashed`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from .errors import CFLDError

#: The thread pools of the native libraries a worker uses, each held to one thread (set before they load).
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                      "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}
#: How many times an item is tried in all when the worker doing it dies.
ATTEMPTS = 2


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (taskset, a batch scheduler's cgroup cpuset), cut to a
    container's CPU quota (``cpu.max`` of cgroup v2) where one is set; at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        cores = os.cpu_count() or 1
    with contextlib.suppress(OSError, ValueError):
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]  # noqa: SIM115
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period))))
    return max(1, cores)


def default_workers() -> int:
    """The worker processes a command starts by default: the usable cores, shared among the processes a launcher
    started on this machine (``LOCAL_WORLD_SIZE``, as ``torchrun`` and ``accelerate launch`` set it)."""
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    return max(1, usable_cores() // local)


@dataclass(frozen=True)
class Crashed:
    """The result of an item whose worker died on every attempt (killed by a signal, or exited)."""

    exitcode: int | None

    @property
    def sentence(self) -> str:
        how = (f"was killed by {signal.Signals(-self.exitcode).name}" if self.exitcode is not None and self.exitcode < 0
               and -self.exitcode in signal.valid_signals() else f"exited with code {self.exitcode}")
        return (f"the worker process reading it {how}, {ATTEMPTS} times (a crash inside the image or pose library, "
                "or not enough memory); try it alone with --workers 1")


class WorkerError(CFLDError):
    """A worker failed in a way that is not one item's fault (it could not start)."""


class WorkerPool:
    """``workers`` processes running ``work`` on items (see the module docstring). ``peak_memory`` holds, after
    :meth:`map`, each worker's peak resident memory in bytes (where the system reports it)."""

    def __init__(self, work: Callable[[Any, Any, int], Any], setup: Callable[[], Any] | None = None,
                 workers: int = 1):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.work, self.setup, self.workers = work, setup, workers
        self.peak_memory: list[int] = []

    def map(self, items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """``(index, result)`` for every item, as each is done (in order with one worker)."""
        if not items:
            return
        if min(self.workers, len(items)) == 1:  # one item is done here: a worker would only add its start
            yield from self._in_process(items)
        else:
            yield from _Run(self, items).results()

    def _in_process(self, items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        state = self.setup() if self.setup is not None else None
        try:
            for index, item in enumerate(items):
                yield index, self.work(state, item, 0)
        finally:
            _close(state)
        self.peak_memory = [_peak_memory()]


class _Run:
    """One :meth:`WorkerPool.map` over worker processes: hands out items one at a time, replaces dead workers."""

    def __init__(self, pool: WorkerPool, items: Sequence[Any]):
        self.pool, self.items = pool, items
        self.todo = deque((index, 0) for index in range(len(items)))  # (index, attempt)
        self.busy: dict[Any, tuple[int, int] | None] = {}  # process -> (index, attempt) it works on, None: starting
        self.pipes: dict[Any, Any] = {}  # process -> its end of the pipe
        self.context = multiprocessing.get_context("spawn")
        self.deaths_starting = 0

    def results(self) -> Iterator[tuple[int, Any]]:
        try:
            for _ in range(min(self.pool.workers, len(self.items))):
                self._start()
            while self.busy:
                ready = wait([*self.pipes.values(), *(process.sentinel for process in self.busy)])
                for process in list(self.busy):
                    pipe = self.pipes[process]
                    if pipe in ready or pipe.poll():
                        yield from self._receive(process)
                    elif process.sentinel in ready:
                        yield from self._died(process)
        finally:
            self._stop()

    def _start(self) -> None:
        mine, theirs = self.context.Pipe()
        process = self.context.Process(target=_serve, args=(theirs, self.pool.setup, self.pool.work), daemon=True,
                                       name="cfld-worker")
        with _environment(ONE_THREAD):
            process.start()
        theirs.close()
        self.busy[process], self.pipes[process] = None, mine

    def _give(self, process) -> None:
        if self.todo:
            index, attempt = self.todo.popleft()
            self.busy[process] = (index, attempt)
            self.pipes[process].send((index, self.items[index], attempt))
        else:
            self._retire(process)

    def _receive(self, process) -> Iterator[tuple[int, Any]]:
        try:
            kind, index, payload = self.pipes[process].recv()
        except (EOFError, OSError):
            yield from self._died(process)
            return
        if kind == "error":
            raise _unpack(payload)
        if kind == "ok":
            yield index, payload
        self._give(process)  # "ready" (set up) or "ok": the next item

    def _died(self, process) -> Iterator[tuple[int, Any]]:
        process.join()
        doing = self.busy.pop(process)
        self.pipes.pop(process).close()
        if doing is None:
            self.deaths_starting += 1
            if self.deaths_starting >= ATTEMPTS:
                raise WorkerError(f"the worker processes die while starting (exit code {process.exitcode}); "
                                  "run with --workers 1 to see why")
        else:
            index, attempt = doing
            if attempt + 1 < ATTEMPTS:
                self.todo.appendleft((index, attempt + 1))
            else:
                yield index, Crashed(process.exitcode)
        if self.todo:
            self._start()

    def _retire(self, process) -> None:
        pipe = self.pipes.pop(process)
        del self.busy[process]
        with contextlib.suppress(OSError, EOFError):
            pipe.send(None)
            if pipe.poll(30):
                kind, _, peak = pipe.recv()
                if kind == "bye" and peak:
                    self.pool.peak_memory.append(peak)
        pipe.close()
        process.join(30)

    def _stop(self) -> None:
        for process in list(self.busy):  # an error, or the caller stopped early: the others are not waited for
            process.terminate()
        for process in list(self.busy):
            process.join(5)
            self.pipes.pop(process).close()
        self.busy.clear()


def _serve(pipe, setup: Callable[[], Any] | None, work: Callable[[Any, Any, int], Any]) -> None:
    """A worker's life: set up, then one item at a time until told to stop (None)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    with contextlib.suppress(ImportError):
        import cv2

        cv2.setNumThreads(1)
    try:
        state = setup() if setup is not None else None
    except BaseException as error:  # noqa: BLE001 - told to the parent, which raises it
        pipe.send(("error", None, _pack(error)))
        return
    try:
        pipe.send(("ready", None, None))
        while (message := pipe.recv()) is not None:
            index, item, attempt = message
            try:
                result = work(state, item, attempt)
            except BaseException as error:  # noqa: BLE001
                pipe.send(("error", index, _pack(error)))
                return
            pipe.send(("ok", index, result))
    finally:
        _close(state)
    pipe.send(("bye", None, _peak_memory()))


def _close(state) -> None:
    close = getattr(state, "close", None)
    if callable(close):
        close()


def _pack(error: BaseException) -> bytes:
    """The exception, pickled when it pickles back (cfld's errors do), else a RuntimeError with its traceback."""
    try:
        data = pickle.dumps(error)
        pickle.loads(data)
        return data
    except Exception:  # noqa: BLE001
        text = "".join(traceback.format_exception(error))
        return pickle.dumps(RuntimeError(f"in a worker process: {type(error).__name__}: {error}\n{text}"))


def _unpack(data: bytes) -> BaseException:
    return pickle.loads(data)


def _peak_memory() -> int | None:
    """This process's peak resident memory in bytes, where the system says it."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if os.uname().sysname == "Darwin" else peak * 1024


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (a spawned worker inherits them), leaving those already set."""
    added = {key: value for key, value in values.items() if key not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)
