"""One map-over-files helper: processes, chunks, a progress callback, results in input order.

Where the work runs is the `workers` argument every stage passes through: a number of local
processes, or a `concurrent.futures.Executor` to submit the chunks to (`cluster_executor` gives
one backed by a dask.distributed cluster). The same chunking, ordering and progress either way.
"""

from __future__ import annotations

import ctypes
import gc
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager, nullcontext
from typing import Any, Union

import cv2

from curate.errors import CurateError

# progress(n_done_in_this_step) is called as chunks finish; the CLI passes a rich bar's advance.
Progress = Callable[[int], None]
# What every stage's `workers=` takes: local processes (None: all cores), or an executor.
Workers = Union[int, Executor, None]
CLUSTER_ENV = "CURATE_CLUSTER"
CONNECT_TIMEOUT = 10  # seconds to reach a scheduler before giving up with one line


def default_workers() -> int:
    """All cores this process may use (respects taskset / cgroup affinity where visible)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def scaled(progress: Progress | None, items: int, steps: int) -> Progress | None:
    """A callback counting `items` that moves `progress` by `steps` whole steps in all, evenly:
    so one bar can count files through stages of different lengths (a file's features, then
    its pairs). None stays None."""
    if progress is None or items <= 0:
        return None
    seen = 0

    def advance(n: int) -> None:
        nonlocal seen
        before, seen = seen, seen + n
        step = seen * steps // items - before * steps // items
        if step:
            progress(step)

    return advance


# What `map_files(..., shared=x)` hands every worker once (read it with `shared()`).
_SHARED: Any = None


def shared() -> Any:
    """The `shared` object of the map_files call this worker serves."""
    return _SHARED


def _set_shared(value: Any) -> None:
    global _SHARED
    _SHARED = value


def _start_worker(value: Any) -> None:
    """A local worker's start: `shared`, and a heap that keeps what it frees (_keep_heap)."""
    _keep_heap()
    _set_shared(value)


def _keep_heap() -> None:
    """glibc: serve arrays up to 32 MB from the heap and keep what is freed there, rather than
    mapping each array over 128 KB afresh and trimming the heap's top: a worker's temporaries
    (orientation's sample rows, a few MB an image) then stop costing freshly zeroed pages at every
    call (a cold FracAtlas run: 1.6M -> 0.8M page faults). Nothing where glibc is not the C library."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    mallopt(-3, 1 << 25)  # M_MMAP_THRESHOLD


class _Box:
    """`shared` as one object for Client.scatter, which would send a dict or a list item by item
    under the dict's own keys (and a second map of the same dict then loses them to the first's release)."""

    def __init__(self, value: Any):
        self.value = value


def _run_chunk(func: Callable[[Any], Any], chunk: Sequence[Any], shared_value: Any = None) -> list[Any]:
    if shared_value is None:  # nothing shared, or a local worker that got it when it started
        return [func(item) for item in chunk]
    if isinstance(shared_value, _Box):
        shared_value = shared_value.value
    before = _SHARED
    _set_shared(shared_value)  # a cluster worker gets it with the task (sent there once, see below)
    try:
        return [func(item) for item in chunk]
    finally:
        _set_shared(before)


def map_files(
    func: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    workers: Workers = None,
    progress: Progress | None = None,
    chunk_size: int | None = None,
    shared: Any = None,
) -> list[Any]:
    """[func(item) for item in items], over `workers` processes, in input order.

    func must be a module-level function (it is pickled to the workers) and should catch
    its own per-file errors: one bad file must become a result, not end the map.
    shared: a large read-only object func reads with `shared()`. It reaches each worker once
    when the worker starts (for free where processes fork), not with every chunk.
    workers: a process count (None: all cores) or an Executor (e.g. `cluster_executor`'s):
    chunks are then submitted to it, and `shared` is sent to each of its workers once.
    """
    items = list(items)
    if isinstance(workers, Executor):
        return _map_chunks(workers, func, items, progress, chunk_size or _chunk_size(len(items), _slots(workers)),
                           _scatter(workers, shared))
    workers = default_workers() if workers is None else max(1, int(workers))
    if workers == 1 or len(items) < 2 * workers:
        before = _SHARED
        _set_shared(shared)
        try:
            results = []
            for item in items:
                results.append(func(item))
                if progress:
                    progress(1)
            return results
        finally:
            _set_shared(before)

    # the forked workers' garbage collector then skips every object they inherit: walking them
    # would copy the pages they sit on into each worker (messy600: 10% fewer page faults)
    gc.freeze()
    try:
        with _no_opencv_threads(), ProcessPoolExecutor(max_workers=workers, initializer=_start_worker,
                                                       initargs=(shared,)) as pool:
            return _map_chunks(pool, func, items, progress, chunk_size or _chunk_size(len(items), workers), None)
    finally:
        gc.unfreeze()


@contextmanager
def _no_opencv_threads() -> Iterator[None]:
    """OpenCV on one thread while workers are forked, its own count restored after.

    OpenCV's thread pool is not fork-safe: a worker forked while one of the parent's OpenCV
    threads held a lock waits for it forever (seen once under load: a kaggle set's verification
    stopped with both workers asleep, one inside ORB's `detectAndCompute`). One thread stops and
    joins the parent's pool threads before any fork, and the workers, inheriting the count, never
    use a pool (one per core already; OpenCV's own threads there saved no CPU, session 15)."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)


def _chunk_size(n_items: int, slots: int) -> int:
    # Small chunks keep the bar moving and balance uneven files; big enough to amortise IPC.
    return max(1, min(64, n_items // (slots * 8) or 1))


def _map_chunks(pool: Executor, func, items: list, progress, chunk_size: int, shared_value) -> list[Any]:
    chunks = [items[i:i + chunk_size] for i in range(0, len(items), chunk_size)]
    results: list[Any] = [None] * len(chunks)
    futures = {pool.submit(_run_chunk, func, chunk, shared_value): i for i, chunk in enumerate(chunks)}
    for fut in as_completed(futures):
        i = futures[fut]
        results[i] = fut.result()
        if progress:
            progress(len(chunks[i]))
    return [r for chunk in results for r in chunk]


# ---- a dask.distributed cluster as the executor (imported only when asked for) -------------


def _slots(executor: Executor) -> int:
    client = getattr(executor, "_client", None)
    if client is None:
        return default_workers()
    return max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()))


def _scatter(executor: Executor, value: Any) -> Any:
    """`shared` sent once to every worker of a cluster (tasks then carry only a reference)."""
    client = getattr(executor, "_client", None)
    if value is None or client is None:
        return value
    return client.scatter(_Box(value), broadcast=True, hash=False)


@contextmanager
def cluster_executor(address: str | None) -> Iterator[Executor | None]:
    """An Executor on the dask.distributed scheduler at `address` (None: yields None, and
    nothing of Dask is imported). Files must be readable by every worker at the same path."""
    if not address:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:
        raise CurateError("--cluster needs dask.distributed: pip install 'curate[dask]'") from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise CurateError(f"cannot reach the dask scheduler at {address}: {str(exc).splitlines()[0]}") from None
    try:
        with client.get_executor(pure=False) as executor:
            yield executor
    finally:
        client.close()


def local_or_cluster(workers: int | None, address: str | None):
    """Context giving what stages take as `workers=`: the cluster's executor when `address`
    is set, else the process count."""
    if address:
        return cluster_executor(address)
    return nullcontext(workers)
