"""map_files: results in input order, the same with 1 or 2 processes, and a shared object
reaching every worker without travelling with each item."""

from curate.parallel import map_files, shared


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
