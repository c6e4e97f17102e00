"""When a stage's saved result is stale: its code version."""

from __future__ import annotations

import importlib

from curate.cache import code_digest


def test_a_stage_code_version_covers_every_module_it_reaches(tmp_path, monkeypatch):
    """A stage's code version changes when any module it imports changes, even one reached only
    through another module or from inside a function; not when a module it never reaches does."""
    package = tmp_path / "stagepkg"
    package.mkdir()
    files = {
        "__init__.py": "",
        "stage.py": "def run():\n    from stagepkg import helper\n    return helper.go()\n",
        "helper.py": "from stagepkg.deep import (\n    DEPTH,\n)\n\n\ndef go():\n    return DEPTH\n",
        "deep.py": "DEPTH = 1\n",
        "other.py": "X = 1\n",
    }
    for name, text in files.items():
        (package / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    stage = importlib.import_module("stagepkg.stage")
    before = code_digest(stage)

    (package / "other.py").write_text("X = 2\n")
    assert code_digest(stage) == before
    (package / "deep.py").write_text("DEPTH = 2\n")
    assert code_digest(stage) != before
