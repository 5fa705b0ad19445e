"""The worker pool the photo commands share (cfld.workers): every item once, the same results as in process, an
error raised where the command runs, a killed worker replaced, one thread of each native pool per worker."""

from __future__ import annotations

import os
import pickle
import signal
import time
from functools import partial
from pathlib import Path

import pytest

from cfld.errors import InputError, WriteError
from cfld.workers import ATTEMPTS, Crashed, WorkerError, WorkerPool, default_workers, usable_cores


class Counter:
    """A worker's state: how many items this worker did, and which process it is."""

    def __init__(self, offset: int):
        self.offset, self.done = offset, 0

    def close(self) -> None:
        self.done = -1


def make_counter(offset: int) -> Counter:
    return Counter(offset)


def square(state: Counter, item: int, attempt: int) -> tuple[int, int, str]:
    state.done += 1
    time.sleep(0.05)  # long enough that both workers get items
    return item * item + state.offset, os.getpid(), os.environ.get("OMP_NUM_THREADS", "")


def refuse_seven(state, item: int, attempt: int) -> int:
    if item == 7:
        raise WriteError("/out/7.json", "the disk is full", OSError(28, "No space left on device"), kept="six kept")
    return item


def die_once(marks: str, state, item: int, attempt: int) -> tuple[int, int]:
    """Item 3 kills its worker on the first attempt; item 5 on every attempt."""
    if item == 5 or (item == 3 and attempt == 0):
        Path(marks, f"{item}-{attempt}").touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return item, attempt


def broken_setup():
    raise InputError("mediapipe", "is not installed")


def test_results_are_those_of_one_process():
    items = list(range(23))
    alone = dict(WorkerPool(square, partial(make_counter, 100), workers=1).map(items))
    pool = WorkerPool(square, partial(make_counter, 100), workers=2)
    together = dict(pool.map(items))
    assert sorted(together) == items
    assert {i: r[0] for i, r in together.items()} == {i: r[0] for i, r in alone.items()} == \
        {i: i * i + 100 for i in items}
    assert len({r[1] for r in together.values()}) == 2 and os.getpid() not in {r[1] for r in together.values()}
    assert {r[2] for r in together.values()} == {os.environ.get("OMP_NUM_THREADS", "1")}  # one thread each
    assert len(pool.peak_memory) == 2 and all(peak > 10_000_000 for peak in pool.peak_memory)
    assert "OMP_NUM_THREADS" not in os.environ or os.environ["OMP_NUM_THREADS"] != ""


def test_an_error_in_a_worker_is_raised_here_whole():
    with pytest.raises(WriteError) as caught:
        list(WorkerPool(refuse_seven, workers=2).map(list(range(20))))
    assert caught.value.kept == "six kept" and caught.value.os_error.errno == 28
    with pytest.raises(InputError, match="mediapipe: is not installed"):
        list(WorkerPool(square, broken_setup, workers=2).map([1, 2, 3]))


def test_a_killed_worker_is_replaced_and_its_item_tried_again(tmp_path):
    results = dict(WorkerPool(partial(die_once, str(tmp_path)), workers=2).map(list(range(9))))
    assert sorted(results) == list(range(9))
    assert results[3] == (3, 1)  # done by a new worker, the second time
    assert all(results[i] == (i, 0) for i in range(9) if i not in (3, 5))
    assert isinstance(results[5], Crashed) and results[5].exitcode == -signal.SIGKILL
    assert "killed by SIGKILL" in results[5].sentence and f"{ATTEMPTS} times" in results[5].sentence
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3-0", "5-0", "5-1"]


def test_workers_that_die_starting_are_one_sentence():
    with pytest.raises(WorkerError, match="die while starting"):
        list(WorkerPool(square, partial(os._exit, 3), workers=2).map([1, 2]))


def test_cfld_errors_pickle_whole():
    error = WriteError("/x.png", "the disk is full", OSError(28, "No space"), what="the picture", kept="all kept")
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), str(again), again.what, again.kept) == (WriteError, str(error), "the picture", "all kept")


def test_default_workers_share_the_cores_among_launched_processes(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert default_workers() == usable_cores() >= 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(2 * usable_cores()))
    assert default_workers() == 1
