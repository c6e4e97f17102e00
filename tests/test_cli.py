"""The command line: exit codes, one-line errors, help for every command, README coverage."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.cli import app
from tests.conftest import save, tree_digest

README = Path(__file__).resolve().parents[1] / "README.md"
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_audit_writes_csv_and_json_summary(split_dataset, tmp_path):
    (split_dataset / "train" / "fractured" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0junk")
    before = tree_digest(split_dataset)
    result = run("audit", split_dataset, "--workdir", tmp_path / "out", "--json", "--workers", "1")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["files"], summary["images_ok"], summary["corrupt"]) == (14, 13, 1)
    assert (tmp_path / "out" / "manifests" / "xrays" / "audit.csv").is_file()
    assert tree_digest(split_dataset) == before  # nothing written inside ROOT


def test_fail_on_corrupt_exits_1_only_when_something_is_broken(split_dataset, tmp_path):
    assert run("audit", split_dataset, "--workdir", tmp_path, "--fail-on", "corrupt", "-q").exit_code == 0
    (split_dataset / "test" / "fractured" / "zero.jpg").write_bytes(b"")
    assert run("audit", split_dataset, "--workdir", tmp_path, "--fail-on", "corrupt", "-q").exit_code == 1


@pytest.mark.parametrize("make_root, message", [
    (lambda p: p / "missing", "no such folder"),
    (lambda p: (p / "a.txt").write_text("x") and p / "a.txt", "is a file"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "empty"),
    (lambda p: (p / "notes").mkdir() or (p / "notes" / "a.txt").write_text("hi") and p / "notes", "no readable images"),
])
def test_unusable_root_exits_2_with_one_line(tmp_path, make_root, message):
    root = make_root(tmp_path)
    result = run("audit", root, "--workdir", tmp_path / "out")
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0]


def test_workdir_inside_root_is_refused(split_dataset):
    result = run("audit", split_dataset, "--workdir", split_dataset / "out")
    assert result.exit_code == 2 and "inside the dataset" in result.stderr


def test_unknown_fail_on_is_bad_usage(split_dataset, tmp_path):
    result = run("audit", split_dataset, "--workdir", tmp_path, "--fail-on", "bananas")
    assert result.exit_code == 2 and "--fail-on bananas" in result.stderr


def commands() -> list[str]:
    import typer.main

    return sorted(typer.main.get_command(app).commands)


def test_every_command_has_help_and_is_in_the_readme():
    readme = README.read_text(encoding="utf-8")
    for name in commands():
        result = run(name, "--help")
        assert result.exit_code == 0, name
        assert app.registered_commands and typer_help(name), f"{name} has no help text"
        assert re.search(rf"`curate {name}\b", readme), f"`curate {name}` is not documented in README.md"


def test_every_option_is_in_the_readme():
    # the README is the user's reference too: an option only docs/CLI.md names is easy to miss
    import typer.main

    readme = README.read_text(encoding="utf-8")
    for name, command in typer.main.get_command(app).commands.items():
        for param in command.params:
            for option in param.opts:
                if option.startswith("--") and option != "--help":
                    assert f"`{option}" in readme or f" {option}" in readme, f"curate {name} {option} is not in README.md"


def typer_help(name: str) -> str:
    import typer.main

    return typer.main.get_command(app).commands[name].help or ""


def test_help_paragraphs_flow_to_the_terminal_width():
    # the docstrings are wrapped in the source; shown as is, a narrow terminal breaks them twice
    for name in commands():
        for paragraph in typer_help(name).split("\n\n"):
            assert "\n" not in paragraph, f"{name}: {paragraph!r}"
    narrow = CliRunner().invoke(app, ["dups", "--help"], env={"COLUMNS": "80"}).output
    assert "(keypoints + a" in narrow and "similarity transform" in narrow


def test_help_and_version_do_not_import_tensorflow():
    code = ("import sys; from typer.testing import CliRunner; from curate.cli import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0; "
            "r = CliRunner().invoke(app, ['--version']); assert 'curate' in r.output; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_readme_quick_start_is_two_commands_and_ci_runs_the_test_one():
    readme = README.read_text(encoding="utf-8")
    block = re.search(r"## Quick start\s+```sh\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]
    assert commands == ["make demo", "make test"]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci


def test_run_curates_a_leaky_dataset_end_to_end(split_dataset, tmp_path):
    """A rotated copy of a train image hidden in test: found, dropped as a leak, nothing leaks after."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    train_img = np.asarray(Image.open(split_dataset / "train" / "fractured" / "img0.png"))
    save(split_dataset / "test" / "fractured" / "a1b2c3.png", np.rot90(train_img, 1))
    (split_dataset / "val" / "fractured" / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF")
    before = tree_digest(split_dataset)

    result = run("run", split_dataset, "--workdir", tmp_path / "out", "--json", "--workers", "1",
                 "--fail-on", "leakage")
    assert result.exit_code == 1, result.output  # the leak was there before curation
    summary = json.loads(result.stdout)
    assert summary["files"] == 15 and summary["corrupt"] == 1
    assert summary["leaked_files"] >= 1 and summary["residual_leaks"] == 0
    assert set(summary["steps"]) >= {"audit", "hash", "dups", "orient", "manifest", "report"}

    out = tmp_path / "out"
    manifest = pd.read_csv(out / "manifests" / "xrays" / "manifest.csv", dtype=str, keep_default_na=False)
    assert sorted(manifest["path"]) == sorted(before)  # every file exactly one row
    copy = manifest.set_index("path").loc["test/fractured/a1b2c3.png"]
    assert (copy["keep"], copy["reason"]) == ("false", "leak")
    assert (out / "reports" / "xrays" / "report.html").stat().st_size > 1000
    assert json.loads((out / "reports" / "xrays" / "summary.json").read_text())["residual_leaks"] == 0
    assert tree_digest(split_dataset) == before
