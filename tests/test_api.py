"""The Python API: one function per command with the same options, and the README's example run as written."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import curate
from curate.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
PRESENTATION = {"quiet", "json_out", "fail_on"}  # shape the terminal output only: no keyword
MIRRORS = {"run": curate.run, "audit": curate.audit, "dups": curate.find_duplicates,
           "train": curate.train, "compare": curate.compare}


def cli_params(command: str) -> dict:
    import typer.main

    click_command = typer.main.get_command(app).commands[command]
    return {p.name: p for p in click_command.params if p.name not in PRESENTATION}


@pytest.mark.parametrize("command", sorted(MIRRORS))
def test_every_option_of_the_command_is_a_keyword_with_the_same_default(command):
    options = cli_params(command)
    keywords = {name: p for name, p in inspect.signature(MIRRORS[command]).parameters.items()}
    assert set(options) == set(keywords), f"curate {command} and curate.{MIRRORS[command].__name__} differ"
    for name, option in options.items():
        default = option.default.value if hasattr(option.default, "value") else option.default
        if keywords[name].default is inspect.Parameter.empty:
            assert option.required, name
        else:
            assert keywords[name].default == default, name


def test_the_functions_are_the_packages_own_even_after_the_stage_modules_load():
    import curate.audit  # noqa: F401  (the stage module of the same name)

    assert callable(curate.audit) and curate.audit is curate.api.audit
    assert {"run", "audit", "find_duplicates", "train", "compare"} <= set(curate.__all__)
    for name in ("run", "audit", "find_duplicates", "train", "compare"):
        assert getattr(curate, name).__doc__.startswith("`curate "), name


def test_compare_metrics_are_tidy():
    from curate.api import tidy_metrics

    block = {"n": 10, "n_pos": 4, "accuracy": 0.8, "accuracy_ci": [0.6, 0.9], "auc": None, "auc_ci": None}
    result = {"naive": {"on_naive_test": block, "on_clean_test": None,
                        "naive_test_breakdown": {"leaked": block, "clean": block}},
              "curated": {"on_curated_test": block, "on_clean_test": None}}
    table = tidy_metrics(result)
    assert list(table.columns) == ["model", "test", "metric", "value", "ci_low", "ci_high", "n", "n_pos"]
    assert set(table["test"]) == {"naive_test", "naive_test_leaked", "naive_test_clean", "curated_test"}
    row = table[(table["model"] == "curated") & (table["metric"] == "accuracy")].iloc[0]
    assert (row["value"], row["ci_low"], row["ci_high"], row["n"]) == (0.8, 0.6, 0.9, 10)
    assert table.loc[table["metric"] == "auc", "value"].isna().all()  # cannot be computed: NaN, not made up


def readme_python() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## From Python", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def readme_example(tmp_path_factory):
    """The README's "From Python" block, run as written in a fresh folder (umask 022, as a user's)."""
    where = tmp_path_factory.mktemp("notebook")
    before, umask = Path.cwd(), os.umask(0o022)
    os.chdir(where)
    try:
        namespace: dict = {}
        exec(compile(readme_python(), "README.md", "exec"), namespace)
    finally:
        os.chdir(before)
        os.umask(umask)
    return where, namespace


def test_the_readme_example_runs_and_returns_dataframes(readme_example):
    where, ns = readme_example
    result, run, cmp = ns["result"], ns["run"], ns["cmp"]
    sample = Path(curate.__file__).parent / "sample"
    files = [p for p in sample.rglob("*") if p.is_file()]
    assert len(result.manifest) == len(files) == result.summary["files"]  # one row per input file
    assert {"path", "label", "split", "keep", "reason", "group", "sha256", "rotation"} <= set(result.manifest)
    assert list(result.duplicates.columns[:3]) == ["group", "path", "split"]
    assert len(result.audit) == len(files) and "status" in result.audit
    for path in result.paths.values():
        assert path.is_file() and where / "curate-out" in path.parents, path
    # train's results land under the workdir the manifest came from, not the current folder
    assert run.out_dir.parent == where / "curate-out" / "reports" / "sample"
    assert "p_fractured" in run.predictions and run.predictions["p_fractured"].between(0, 1).all()
    assert set(cmp.metrics["model"]) == {"naive", "curated"} and cmp.paths["compare_json"].is_file()
    assert 0 <= float(ns["model"].predict(ns["image"][None], verbose=0)[0, 0]) <= 1


def test_a_trained_run_folder_is_shareable(readme_example):
    _, ns = readme_example
    out = ns["run"].out_dir
    assert out.stat().st_mode & 0o777 == 0o755
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert set(modes.values()) == {0o644}, modes


PLAIN_KERAS = """
import sys, zipfile
import keras, numpy as np, pandas as pd
model_path, root = sys.argv[1], sys.argv[2]
config = zipfile.ZipFile(model_path).read("config.json").decode()
model = keras.models.load_model(model_path)  # safe mode, no custom objects
preds = pd.read_csv(model_path.replace("model.keras", "predictions.csv"))
column = [c for c in preds.columns if c.startswith("p_")][0]
got = [float(model.predict(keras.utils.img_to_array(keras.utils.load_img(f"{root}/{p}"))[None], verbose=0)[0, 0])
       for p in preds["path"]]
print(sorted(m for m in sys.modules if m.split(".")[0] in ("curate", "train")), "FusedAdam" in config, "curate" in config)
print(float(np.max(np.abs(np.array(got) - preds[column].to_numpy()))), float(np.std(got)))
"""


def test_model_keras_predicts_the_same_in_a_process_that_never_imported_curate(readme_example):
    _, ns = readme_example
    env = {**os.environ, "PYTHONPATH": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", PLAIN_KERAS, str(ns["run"].out_dir / "model.keras"), str(ns["root"])],
                          capture_output=True, text=True, env=env, cwd="/", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    imported, max_diff = done.stdout.strip().splitlines()[-2:]
    assert imported == "[] False False"
    diff, spread = map(float, max_diff.split())
    assert diff < 0.02 and spread > 2 * diff, (diff, spread)  # the same p as the trainer's, not a constant


def test_run_raises_the_commands_one_line_error_on_unusable_input(tmp_path):
    from curate.errors import InputError
    from tests.conftest import radiograph, save

    for i in range(3):  # images straight in ROOT: no label folder, no CSV
        save(tmp_path / "flat" / f"{i}.png", radiograph(i))
    with pytest.raises(InputError, match="none of the 3 images has a label"):
        curate.run(tmp_path / "flat", workdir=tmp_path / "out", workers=1)
