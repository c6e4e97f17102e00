"""One map-over-files helper: processes, chunks, a progress callback, results in input order."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

# progress(n_done_in_this_step) is called as chunks finish; the CLI passes a rich bar's advance.
Progress = Callable[[int], None]


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


def _run_chunk(func: Callable[[Any], Any], chunk: Sequence[Any]) -> list[Any]:
    return [func(item) for item in chunk]


def map_files(
    func: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    chunk_size: int | None = None,
    shared: Any = None,
) -> list[Any]:
    """[func(item) for item in items], over `workers` processes, in input order.

    func must be a module-level function (it is pickled to the workers) and should catch
    its own per-file errors: one bad file must become a result, not end the map.
    shared: a large read-only object func reads with `shared()`. It reaches each worker once
    when the worker starts (for free where processes fork), not with every chunk.
    """
    items = list(items)
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

    # Small chunks keep the bar moving and balance uneven files; big enough to amortise IPC.
    chunk_size = chunk_size or max(1, min(64, len(items) // (workers * 8) or 1))
    chunks = [items[i:i + chunk_size] for i in range(0, len(items), chunk_size)]
    results: list[Any] = [None] * len(chunks)
    with ProcessPoolExecutor(max_workers=workers, initializer=_set_shared, initargs=(shared,)) as pool:
        futures = {pool.submit(_run_chunk, func, chunk): i for i, chunk in enumerate(chunks)}
        for fut in as_completed(futures):
            i = futures[fut]
            results[i] = fut.result()
            if progress:
                progress(len(chunks[i]))
    return [r for chunk in results for r in chunk]
