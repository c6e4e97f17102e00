"""map_files: results in input order, the same with 1 or 2 processes, and a shared object
reaching every worker without travelling with each item; scaled progress."""

import cv2

from curate.parallel import map_files, scaled, shared


def _times_shared(x: int) -> int:
    return x * shared()["factor"]


def test_results_come_back_in_input_order_with_any_number_of_workers():
    items = list(range(50))
    assert map_files(abs, [-i for i in items], workers=1) == items
    assert map_files(abs, [-i for i in items], workers=2) == items


def test_every_worker_sees_the_shared_object():
    items = list(range(50))
    expected = [3 * i for i in items]
    assert map_files(_times_shared, items, workers=1, shared={"factor": 3}) == expected
    assert map_files(_times_shared, items, workers=2, shared={"factor": 3}) == expected


def test_the_shared_object_does_not_outlive_its_call():
    map_files(_times_shared, [1, 2, 3], workers=1, shared={"factor": 3})
    assert shared() is None


def _opencv_threads(_) -> int:
    return cv2.getNumThreads()


def test_workers_are_forked_with_opencv_on_one_thread_and_the_parent_keeps_its_own():
    # a worker forked while the parent's OpenCV threads hold a lock would wait for it forever
    before = cv2.getNumThreads()
    cv2.setNumThreads(4)
    try:
        assert map_files(_opencv_threads, list(range(8)), workers=2) == [1] * 8
        assert cv2.getNumThreads() == 4
    finally:
        cv2.setNumThreads(before)


def test_scaled_progress_spreads_whole_steps_evenly_and_ends_exactly():
    steps = []
    advance = scaled(steps.append, items=7, steps=3)  # 7 batches carry 3 files' worth of the bar
    for n in (1, 1, 2, 1, 2):
        advance(n)
    assert sum(steps) == 3 and all(isinstance(s, int) and s > 0 for s in steps)
    assert len(steps) == 3  # it moved along the way, not all at the end
    assert scaled(None, 7, 3) is None


def test_a_map_reports_progress_through_scaled_in_whole_steps():
    steps = []
    map_files(abs, list(range(40)), workers=2, progress=scaled(steps.append, 40, 10))
    assert sum(steps) == 10
