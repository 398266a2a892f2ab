"""Workers for the benchmark and for model coding, shared so both stop the same way.

Workers are spawned, not forked: a forked copy of a process that has started torch's thread
pools can deadlock. They ignore Ctrl-C, which the main process handles by terminating them,
so an interrupted run stops at once instead of finishing every queued job (the CLI turns
SIGTERM and SIGHUP into the same interrupt). And they die with the main process even when
it gets no chance to stop them (SIGKILL, a crash): on Linux the kernel sends each worker
SIGKILL when its parent dies (PR_SET_PDEATHSIG); elsewhere a thread in the worker watches
for the parent to go. A dead worker is then the end of the pool's work, so multiprocessing's
resource tracker, which the workers also keep alive, exits with them.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from gencomp.errors import WorkerDiedError

#: prctl(2) option: the signal a process gets when the thread that created it exits.
_PR_SET_PDEATHSIG = 1
#: How often a worker without PR_SET_PDEATHSIG looks for its parent.
_PARENT_POLL_SECONDS = 0.5
#: How long Ctrl-C may wait while the main thread waits for a worker (`wait_first`).
_INTERRUPT_POLL_SECONDS = 0.1


def _exit_with_parent(parent: int) -> None:
    """End this worker as soon as process `parent` is gone (module docstring)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent:  # it died before the request took effect
                os._exit(1)
            return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _start_worker(threads: int, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent(parent)
    # torch (CPU models) would otherwise start a thread per core in every worker.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


@contextlib.contextmanager
def process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of `workers` spawned processes that share the cores. Leaving the block
    normally waits for the pool; leaving it by an error, Ctrl-C or a closed generator
    terminates the workers, running jobs included. Use it from the thread that opens it,
    as every caller here does: Linux ties a worker's death signal to the thread that
    started it."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(threads, os.getpid()))
    finished = False
    try:
        yield pool
        finished = True
    except BrokenProcessPool as error:
        raise WorkerDiedError("a worker process died before finishing its job (killed, or "
                              "out of memory?)") from error
    finally:
        if not finished:
            # ProcessPoolExecutor has no public way to stop running work before 3.14.
            running = list((pool._processes or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in running:
                process.terminate()
            for process in running:
                process.join()
        pool.shutdown(wait=True)


def wait_first(pending: set[Future], timeout: float | None = None
               ) -> tuple[set[Future], set[Future]]:
    """(done, pending): wait until at least one future is done, or `timeout` seconds have
    passed (done is then empty). Ctrl-C is taken between short waits, as
    KeyboardInterrupt: raised inside `wait`'s lock handling, it can surface as a
    RuntimeError ("release unlocked lock") that no interrupt handler sees."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        return wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
    deadline = None if timeout is None else time.monotonic() + timeout
    interrupted: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    try:
        done: set[Future] = set()
        while not done and not interrupted:
            left = _INTERRUPT_POLL_SECONDS if deadline is None else deadline - time.monotonic()
            if left <= 0:
                break
            done, pending = wait(pending, timeout=min(left, _INTERRUPT_POLL_SECONDS),
                                 return_when=FIRST_COMPLETED)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if interrupted:
        raise KeyboardInterrupt
    return done, pending


@contextlib.contextmanager
def thread_pool(workers: int) -> Iterator[ThreadPoolExecutor]:
    """A pool of `workers` threads, for work that releases the GIL (numba kernels): nothing
    to start or load. Leaving the block cancels the queued jobs; running ones, which cannot
    be interrupted, finish."""
    pool = ThreadPoolExecutor(workers)
    try:
        yield pool
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def map_in_order(function: Callable[..., Any], jobs: list[tuple[Any, ...]], workers: int,
                 threads: bool = False, on_result: Callable[[int], None] | None = None
                 ) -> list[Any]:
    """[function(*job) for job in jobs], the jobs spread over `workers` processes (or
    threads); `on_result(i)` is called, in this thread, as job i's result is taken."""
    pool_of = thread_pool if threads else process_pool
    with pool_of(min(workers, len(jobs))) as pool:
        futures = [pool.submit(function, *job) for job in jobs]
        results = []
        for index, future in enumerate(futures):
            results.append(future.result())
            if on_result is not None:
                on_result(index)
        return results
