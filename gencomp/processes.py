"""Workers for the benchmark and for model coding, shared so both stop the same way.

Workers are spawned, not forked: a forked copy of a process that has started torch's thread
pools can deadlock. They ignore Ctrl-C, which the main process handles by terminating them,
so an interrupted run stops at once instead of finishing every queued job.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any


def _start_worker(threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # torch (CPU models) would otherwise start a thread per core in every worker.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


@contextlib.contextmanager
def process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of `workers` spawned processes that share the cores. Leaving the block
    normally waits for the pool; leaving it by an error, Ctrl-C or a closed generator
    terminates the workers, running jobs included."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(threads,))
    finished = False
    try:
        yield pool
        finished = True
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
                 threads: bool = False) -> list[Any]:
    """[function(*job) for job in jobs], the jobs spread over `workers` processes (or
    threads)."""
    pool_of = thread_pool if threads else process_pool
    with pool_of(min(workers, len(jobs))) as pool:
        futures = [pool.submit(function, *job) for job in jobs]
        return [future.result() for future in futures]
