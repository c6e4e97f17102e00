"""The pairs of FracAtlas images judged by eye, which the dedup benchmark reads."""

from pathlib import Path

import pandas as pd

PAIRS = Path(__file__).resolve().parents[1] / "benchmarks" / "fracatlas_pairs.csv"


def test_the_judged_pairs_read_as_a_table_with_a_verdict_each():
    pairs = pd.read_csv(PAIRS)
    assert list(pairs.columns) == ["a", "b", "verdict", "note"]
    assert set(pairs["verdict"]) == {"same", "different"}
    assert pairs["a"].str.fullmatch(r"IMG\d{7}").all() and pairs["b"].str.fullmatch(r"IMG\d{7}").all()
    assert not pairs.duplicated(["a", "b"]).any()
