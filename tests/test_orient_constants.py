"""docs/orient-constants.md keeps the history of orientation's constants: every one is there,
under the module that holds it, so a new constant cannot go undocumented."""

from __future__ import annotations

from pathlib import Path

from tests.test_dedup_constants import undocumented

DOC = Path(__file__).resolve().parents[1] / "docs" / "orient-constants.md"
MODULES = ("skew", "pair_pixels", "group_turns", "upright", "orient")


def test_every_constant_of_the_orientation_modules_is_documented_under_its_module():
    missing = undocumented(DOC, MODULES)
    assert not missing, f"not in {DOC.name}: {missing}"
