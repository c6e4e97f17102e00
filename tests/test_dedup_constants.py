"""docs/dedup-constants.md keeps the history of the dups stage's constants: every one is there,
under the module that holds it, so a new constant cannot go undocumented."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "dedup-constants.md"
MODULES = ("candidates", "verify", "dedup", "original", "traces")


def constants(module: str) -> set[str]:
    """The upper-case names a module assigns at its top level (not those it imports)."""
    tree = ast.parse(Path(importlib.import_module(f"curate.{module}").__file__).read_text())
    targets = [t for node in tree.body if isinstance(node, ast.Assign) for t in node.targets]
    names = [e.id for t in targets for e in (t.elts if isinstance(t, ast.Tuple) else [t]) if isinstance(e, ast.Name)]
    return {name for name in names if name.isupper() and not name.startswith("_")}


def undocumented(doc: Path, modules) -> dict[str, list[str]]:
    """Per module, its constants that the doc's section for it (`## ... (`curate/MODULE.py`)`) does not name."""
    sections = re.split(r"^## ", doc.read_text(), flags=re.M)
    missing = {}
    for module in modules:
        section = next(s for s in sections if f"`curate/{module}.py`" in s.splitlines()[0])
        missing[module] = sorted(name for name in constants(module) if not re.search(rf"\b{name}\b", section))
    return {module: names for module, names in missing.items() if names}


def test_every_constant_of_the_dups_modules_is_documented_under_its_module():
    missing = undocumented(DOC, MODULES)
    assert not missing, f"not in {DOC.name}: {missing}"
