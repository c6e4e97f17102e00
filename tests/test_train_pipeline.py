"""The trainer end to end on a tiny generated dataset: manifests in, reports out.

The corpus: 32 duplicate groups of two identical 40 px images (an original and its copy),
half "fractured" (a bright stroke), half "not fractured". The curated manifest keeps one
image per group in a group-aware split; the naive manifest keeps both, and scatters a few
copies across splits the way real leaky datasets do (copies of test images in train and
copies of train images in test).
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curate.errors import CurateError, InputError
from curate.trainer.compare import compare, plan
from curate.trainer.data import find_positive, load_pixels, make_dataset, read_manifest
from curate.trainer.fit import train_manifest
from curate.trainer.models import WeightsNotFound, build

COLUMNS = ["path", "label", "orig_split", "split", "keep", "reason", "group", "sha256", "rotation"]
SIZE = 32  # the image size the models see in these tests


def base_split(i: int) -> str:
    return {0: "train", 1: "train", 2: "train", 3: "train", 4: "val", 5: "val"}.get(i % 8, "test")


def naive_copy_split(i: int) -> str:
    """Where the naive layout put group i's copy: test groups 6, 7 leak into train, 0, 1 into test."""
    return {6: "train", 7: "train", 0: "test", 1: "test"}.get(i, base_split(i))


def make_corpus(tmp_path, n_groups=32, negative_test_leaks=False):
    """ROOT with 2 * n_groups PNGs, and manifests/demo/{naive,manifest}.csv + manifest.json."""
    root = tmp_path / "root"
    (root / "img").mkdir(parents=True)
    rng = np.random.default_rng(0)
    naive, curated = [], []
    for i in range(n_groups):
        label = "fractured" if i % 2 else "not fractured"
        pixels = rng.integers(0, 90, (40, 40), dtype=np.uint8)
        if label == "fractured":
            pixels[np.arange(40), np.arange(40)] = 255  # the "fracture": a bright diagonal
        copy_split = naive_copy_split(i)
        if negative_test_leaks and base_split(i) == "test" and label == "not fractured":
            copy_split = "train"  # every negative test image has a copy in naive train
        for k, (name, nsplit) in enumerate(((f"img/g{i}.png", base_split(i)), (f"img/g{i}_copy.png", copy_split))):
            Image.fromarray(pixels).save(root / name)
            row = dict(path=name, label=label, orig_split=nsplit, group=i, sha256=f"{i}-{k}", rotation=0)
            naive.append({**row, "split": nsplit, "keep": "true", "reason": ""})
            keep = k == 0
            curated.append({**row, "split": base_split(i) if keep else "", "keep": "true" if keep else "false",
                            "reason": "" if keep else "duplicate"})
    out = tmp_path / "work" / "manifests" / "demo"
    out.mkdir(parents=True)
    pd.DataFrame(naive, columns=COLUMNS).to_csv(out / "naive.csv", index=False)
    pd.DataFrame(curated, columns=COLUMNS).to_csv(out / "manifest.csv", index=False)
    (out / "manifest.json").write_text(json.dumps({"root": str(root)}))
    return root, out / "naive.csv", out / "manifest.csv"


@pytest.fixture
def corpus(tmp_path):
    return make_corpus(tmp_path)


# ---- reading manifests and decoding ---------------------------------------------------------

def test_root_comes_from_manifest_json_or_the_root_option(corpus, tmp_path):
    root, _, curated = corpus
    assert read_manifest(curated).root == root
    (curated.parent / "manifest.json").unlink()
    with pytest.raises(InputError, match="--root"):
        read_manifest(curated)
    assert read_manifest(curated, root=root).root == root


def test_the_positive_class_is_fractured_unless_told_otherwise():
    assert find_positive(["Non_fractured", "Fractured"]) == "Fractured"
    assert find_positive(["not fractured", "fractured"]) == "fractured"
    assert find_positive(["normal", "broken"], "BROKEN") == "broken"
    with pytest.raises(CurateError, match="positive"):
        find_positive(["normal", "broken"])  # nothing says "fract": refuse to guess


def test_the_manifest_rotation_is_honoured_by_the_loader(tmp_path):
    upright = np.zeros((40, 40), dtype=np.uint8)
    upright[:20, :10] = 255  # a bright bar at the top left
    Image.fromarray(np.rot90(upright, -1)).save(tmp_path / "turned.png")  # stored turned 90 CW
    Image.fromarray(upright).save(tmp_path / "upright.png")
    rows = pd.DataFrame({"path": ["turned.png", "upright.png"], "rotation": [90.0, 0.0], "sha256": ["a", "b"]})
    px = load_pixels(rows, tmp_path, 40)
    assert px.ok.all()
    np.testing.assert_array_equal(px.images[0], upright)  # turned back 90 CCW
    np.testing.assert_array_equal(px.images[1], upright)


def test_each_image_is_decoded_once_then_read_from_the_cache(corpus, tmp_path, monkeypatch):
    root, _, curated = corpus
    rows = read_manifest(curated).table.head(6)
    first = load_pixels(rows, root, SIZE, cache_dir=tmp_path / "cache")

    def must_not_decode(*args, **kwargs):
        raise AssertionError("decoded again although the cache holds these pixels")

    monkeypatch.setattr("curate.trainer.data.load_grey", must_not_decode)
    again = load_pixels(rows, root, SIZE, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again.images, first.images)


def test_a_file_that_no_longer_decodes_is_reported_not_fatal(tmp_path):
    Image.fromarray(np.full((8, 8), 9, np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "gone.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    rows = pd.DataFrame({"path": ["ok.png", "gone.png"], "rotation": [0.0, 0.0], "sha256": ["", ""]})
    px = load_pixels(rows, tmp_path, 8)
    assert px.ok.tolist() == [True, False]
    assert px.errors["gone.png"].startswith("corrupt")


def test_the_dataset_rescales_to_unit_range_and_repeats_grey_into_three_channels():
    images = np.full((5, SIZE, SIZE), 255, dtype=np.uint8)
    ds = make_dataset(images, np.ones(5), batch_size=4, channels=3, augment=True, shuffle=True)
    batches = list(ds)
    assert [b[0].shape for b in batches] == [(4, SIZE, SIZE, 3), (1, SIZE, SIZE, 3)]
    x = batches[0][0].numpy()
    assert x.max() == pytest.approx(1.0) and x.min() >= 0.0  # 'nearest' fill keeps a white image white


def bar_images(n=8):
    images = np.zeros((n, SIZE, SIZE), dtype=np.uint8)
    images[:, 4:12, 2:20] = 255  # identical images with an off-centre bar
    return images


def test_augmentation_differs_between_images_batches_and_epochs():
    images = bar_images()
    ds = make_dataset(images, np.zeros(8), batch_size=4, augment=True, seed=0)
    first, second = [b[0].numpy() for b in ds], [b[0].numpy() for b in ds]
    assert not np.array_equal(first[0][0], first[0][1])  # two images of one batch
    # Two batches: this once failed now and then, when batches were augmented in parallel
    # and two of them read the random layers' seed state before either advanced it.
    assert not np.array_equal(first[0][0], first[1][0])
    assert not np.array_equal(first[0], second[0])  # two epochs
    plain = next(iter(make_dataset(images, np.zeros(8), batch_size=4)))[0].numpy()
    np.testing.assert_array_equal(plain[0], images[0][..., None] / 255.0)  # no augmentation: just rescaled


def test_augmentation_is_one_warp_that_is_the_identity_when_every_range_is_zero(monkeypatch):
    import tensorflow as tf

    import curate.trainer.data as data

    monkeypatch.setitem(data.AUGMENT, "rotation_degrees", 0)
    monkeypatch.setitem(data.AUGMENT, "shift", 0.0)
    monkeypatch.setitem(data.AUGMENT, "zoom", 0.0)
    monkeypatch.setitem(data.AUGMENT, "horizontal_flip", False)
    images = bar_images(4)[..., None].astype(np.float32)
    out = data.augment_batch(tf.constant(images), tf.random.Generator.from_seed(0)).numpy()
    np.testing.assert_allclose(out, images, atol=1e-3)


def test_the_same_seed_replays_the_same_augmented_epochs():
    def two_epochs(seed):
        ds = make_dataset(bar_images(), np.zeros(8), batch_size=2, augment=True, shuffle=True, seed=seed)
        return [np.concatenate([b[0].numpy() for b in ds]) for _ in range(2)]

    once, again, other = two_epochs(0), two_epochs(0), two_epochs(1)
    np.testing.assert_array_equal(once[0], again[0])
    np.testing.assert_array_equal(once[1], again[1])
    assert not np.array_equal(once[0], other[0])


# ---- models --------------------------------------------------------------------------------

def test_seed_cnn_is_the_published_architecture():
    assert build("seed-cnn", 224, channels=3).count_params() == 23_907_521


def test_compact_stays_under_a_million_parameters():
    assert build("compact", 224, channels=3).count_params() <= 1_000_000


def bars(n, seed):
    """n noisy 32 px images, every other one with a bright bar at a random height (class 1)."""
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 90, (n, SIZE, SIZE), dtype=np.uint8), np.arange(n) % 2
    for i in np.flatnonzero(y):
        row = rng.integers(4, SIZE - 4)
        x[i, row - 1:row + 1, 4:SIZE - 4] = 255
    return x, y


def test_compact_learns_an_easy_task_within_a_few_dozen_steps():
    from sklearn.metrics import balanced_accuracy_score

    from curate.trainer.fit import fit_model, predict

    (x, y), (x_val, y_val), (x_test, y_test) = bars(64, 0), bars(32, 1), bars(64, 2)
    net, _ = fit_model(x, y, x_val, y_val, model="compact", epochs=8, batch_size=16, seed=0, bf16=False)
    # 32 steps. With Keras's default batch norm momentum the moving statistics lagged so far
    # behind that the eval-mode model ranked this test set perfectly yet put every image in
    # one class (balanced accuracy 0.5), and early stopping kept epoch 1.
    assert balanced_accuracy_score(y_test, predict(net, x_test) >= 0.5) >= 0.9


def test_early_stopping_judges_compact_only_after_its_warm_up():
    from curate.trainer.fit import best_epoch
    from curate.trainer.models import WARMUP_EPOCHS

    history = pd.DataFrame({"epoch": range(1, 8), "val_loss": [0.60, 0.90, 0.80, 0.70, 0.65, 0.66, 0.67]})
    assert best_epoch(history, "seed-cnn") == 1  # as before: the lowest val loss
    assert WARMUP_EPOCHS["compact"] == 3 and best_epoch(history, "compact") == 5
    assert best_epoch(history.head(2), "compact") == 2  # stopped inside the warm-up: the last epoch


def test_bfloat16_computes_in_bfloat16_keeps_float32_weights_and_a_float32_head():
    import keras

    net = build("seed-cnn", SIZE, precision="bfloat16")
    conv, head = net.layers[0], net.layers[-1]
    assert (conv.compute_dtype, conv.variable_dtype) == ("bfloat16", "float32")
    assert head.compute_dtype == "float32"  # probabilities are not rounded to 8 bits
    assert net.count_params() == build("seed-cnn", SIZE).count_params()
    assert keras.config.dtype_policy().name == "float32"  # the global policy is left alone


def test_bf16_none_means_auto_and_true_or_false_force_it(monkeypatch):
    import curate.trainer.fit as fit

    assert fit.precision_for(True) == "bfloat16" and fit.precision_for(False) == "float32"
    monkeypatch.setattr(fit, "cpu_has_bf16", lambda: False)
    assert fit.precision_for(None) == "float32"  # emulated bfloat16 would be slower
    monkeypatch.setattr(fit, "cpu_has_bf16", lambda: True)
    assert fit.precision_for(None) == "bfloat16"


def test_fused_adam_takes_the_same_steps_as_keras_adam():
    import keras

    from curate.trainer.optimizers import FusedAdam

    x, y = bars(32, 0)
    x = x[..., None].astype("float32") / 255
    nets = []
    for opt in (keras.optimizers.Adam(1e-2), FusedAdam(1e-2)):
        keras.utils.set_random_seed(0)
        net = build("compact", SIZE)
        net.compile(optimizer=opt, loss="binary_crossentropy")
        net.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)  # 8 steps
        nets.append(net)
    for keras_w, fused_w in zip(*(n.get_weights() for n in nets)):
        np.testing.assert_allclose(fused_w, keras_w, rtol=1e-4, atol=1e-5)


def test_a_saved_model_loads_back_with_its_optimizer(tmp_path):
    import keras

    from curate.trainer.optimizers import FusedAdam

    net = build("compact", SIZE)
    net.compile(optimizer=FusedAdam(1e-3), loss="binary_crossentropy")
    net.save(tmp_path / "model.keras")
    back = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(back.optimizer, FusedAdam)


def test_a_missing_weights_file_is_a_clear_error_and_nothing_is_downloaded(tmp_path):
    with pytest.raises(WeightsNotFound, match="weights file not found") as err:
        build("mobilenetv2", 96, channels=3, weights=tmp_path / "imagenet_no_top.h5")
    assert isinstance(err.value, CurateError) and "\n" not in str(err.value)


# ---- the experiment's image sets -----------------------------------------------------------

def test_clean_test_set_shares_no_group_with_either_training_set(corpus):
    _, naive, curated = corpus
    sets = plan(read_manifest(naive), read_manifest(curated))
    trained = set(sets["naive_train"]["group"]) | set(sets["curated_train"]["group"])
    assert not set(sets["clean_test"]["group"]) & trained
    # Groups 14, 15, 22, 23, 30, 31 are test groups whose copies stayed out of every train split.
    assert sorted(sets["clean_test"]["path"]) == sorted(f"img/g{i}.png" for i in (14, 15, 22, 23, 30, 31))


def test_curated_test_shares_no_group_with_curated_train(corpus):
    _, naive, curated = corpus
    sets = plan(read_manifest(naive), read_manifest(curated))
    assert not set(sets["curated_test"]["group"]) & set(sets["curated_train"]["group"])


def test_like_for_like_trains_curated_on_every_copy_unless_told_not_to(corpus):
    _, naive, curated = corpus
    n, c = read_manifest(naive), read_manifest(curated)
    assert len(plan(n, c)["curated_train"]) == 32  # 16 train groups x 2 copies
    assert len(plan(n, c, curated_copies="none")["curated_train"]) == 16


def test_naive_test_is_split_into_leaked_and_clean_images(corpus):
    _, naive, curated = corpus
    sets = plan(read_manifest(naive), read_manifest(curated))
    assert sorted(sets["naive_test_leaked"]["path"]) == ["img/g0_copy.png", "img/g1_copy.png", "img/g6.png", "img/g7.png"]
    assert len(sets["naive_test_clean"]) == 12


def test_an_accuracy_gap_from_class_mix_or_a_one_answer_model_comes_with_a_note():
    from curate.trainer.compare import reading_notes

    names = ("not fractured", "fractured")
    y = {"naive_test": np.array([1] * 46 + [0] * 54), "curated_test": np.array([1] * 27 + [0] * 73)}
    says_no = {"naive_on_naive_test": np.full((1, 100), 0.2), "curated_on_curated_test": np.full((1, 100), 0.2)}
    notes = reading_notes(y, says_no, names)
    assert len(notes) == 3  # both models answer one class, and the two test sets differ in mix
    assert "answers 'not fractured' for 100% of the naive test" in notes[0]
    assert "46% 'fractured', the curated test 27%" in notes[2]

    same_mix = {k: np.array([1] * 27 + [0] * 73) for k in y}
    ranked = {k: np.linspace(0, 1, 100)[None, :] for k in says_no}
    assert reading_notes(same_mix, ranked, names) == []


# ---- end to end ----------------------------------------------------------------------------

def test_train_writes_the_model_history_metrics_and_predictions(corpus, tmp_path):
    _, _, curated = corpus
    result = train_manifest(curated, model="compact", epochs=2, batch_size=8, img_size=SIZE, bf16=True,
                            workdir=tmp_path / "work")
    run = result.out_dir
    assert run.parent == tmp_path / "work" / "reports" / "demo" and run.name.startswith("train-compact-")
    for name in ("model.keras", "history.csv", "metrics.json", "classification_report.txt",
                 "confusion_matrix.png", "curves.png", "predictions.csv"):
        assert (run / name).stat().st_size > 0, name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["positive_label"] == "fractured"
    assert metrics["settings"]["precision"] == "bfloat16"  # recorded, as every setting is
    assert metrics["counts"]["train"] == {"n": 16, "n_pos": 8}
    assert metrics["test"]["n"] == 8 and 0 <= metrics["test"]["accuracy"] <= 1
    assert len(metrics["test"]["accuracy_ci"]) == 2
    preds = pd.read_csv(run / "predictions.csv")
    assert list(preds.columns[:3]) == ["path", "label", "split"] and "p_fractured" in preds
    assert len(preds) == 16 and preds["p_fractured"].between(0, 1).all()
    assert len(pd.read_csv(run / "history.csv")) <= 2


def test_compare_writes_compare_json_with_both_protocols_and_the_inflation(corpus, tmp_path):
    _, naive, curated = corpus
    result = compare(naive, curated, model="seed-cnn", epochs=1, batch_size=16, img_size=SIZE,
                     repeats=2, n_boot=200, workdir=tmp_path / "work")
    saved = json.loads((tmp_path / "work" / "reports" / "demo" / "compare.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert (tmp_path / "work" / "reports" / "demo" / "compare.png").stat().st_size > 0
    assert result["settings"]["seeds"] == [0, 1]
    assert result["training"]["naive"]["epochs_run"] == [1, 1]  # per seed: early stopping may cut it short
    assert result["counts"]["naive_test"]["n"] == 16 and result["counts"]["clean_test"]["n"] == 6
    on_test = result["naive"]["on_naive_test"]
    assert on_test["seeds"] == 2 and len(on_test["spread"]["accuracy"]["per_seed"]) == 2
    assert result["naive"]["naive_test_breakdown"]["leaked"]["n"] == 4
    assert set(result["naive"]["naive_test_breakdown"]["clean"]["per_class"]) == {"not fractured", "fractured"}
    assert result["curated"]["on_clean_test"]["n"] == 6
    expected = on_test["accuracy"] - result["curated"]["on_curated_test"]["accuracy"]
    assert result["inflation"]["accuracy"] == pytest.approx(expected, abs=1e-3)


def test_a_clean_test_set_with_one_class_gives_null_scores_and_says_why(tmp_path):
    _, naive, curated = make_corpus(tmp_path, negative_test_leaks=True)
    result = compare(naive, curated, model="compact", epochs=1, batch_size=16, img_size=SIZE,
                     n_boot=100, workdir=tmp_path / "work")
    assert result["naive"]["on_clean_test"] is None and result["curated"]["on_clean_test"] is None
    assert "both classes" in result["clean_test"]["note"]
    assert result["naive"]["on_naive_test"]["accuracy"] is not None


def test_compare_with_folds_scores_every_kept_radiograph_out_of_fold(corpus, tmp_path):
    _, naive, curated = corpus
    result = compare(naive, curated, model="compact", epochs=1, batch_size=16, img_size=SIZE, repeats=2,
                     n_boot=200, folds=2, workdir=tmp_path / "work")
    on_test = result["curated"]["on_curated_test"]
    assert (on_test["n"], on_test["n_groups"], on_test["seeds"]) == (32, 32, 2)  # all kept groups, every seed
    assert result["counts"]["curated_copies"]["n"] == 32  # each group's copy trains with it
    for run in result["curated"]["folds"]:
        assert [f["fold"] for f in run["folds"]] == [1, 2] and sum(f["test"] for f in run["folds"]) == 32
    assert result["naive"]["on_naive_test"]["n"] == 16  # the naive protocol stays the dataset's own split
    assert result["clean_test"]["n"] == 32 - 16 - 2  # kept groups with no copy in naive train (6, 7 leaked into it)
    expected = result["naive"]["on_naive_test"]["accuracy"] - on_test["accuracy"]
    assert result["inflation"]["accuracy"] == pytest.approx(expected, abs=1e-3)
    assert set(result["inflation"]["excludes_zero"]) >= {"accuracy", "auc"}
    assert (tmp_path / "work" / "reports" / "demo" / "compare.png").stat().st_size > 0


def test_train_with_folds_predicts_each_kept_row_once_and_saves_each_fold(corpus, tmp_path):
    _, _, curated = corpus
    run = train_manifest(curated, model="compact", epochs=1, batch_size=16, img_size=SIZE, folds=2,
                         workdir=tmp_path / "out")
    preds = run.predictions
    assert len(preds) == 32 and preds["path"].is_unique and set(preds["fold"]) == {1, 2}
    assert preds["p_fractured"].between(0, 1).all()
    assert run.metrics["out_of_fold"]["n"] == 32
    assert all((run.out_dir / f"fold-{f}" / "model.keras").is_file() for f in (1, 2))
    assert set(pd.read_csv(run.out_dir / "history.csv")["fold"]) == {1, 2}


def test_deterministic_training_repeats_bit_for_bit(corpus):
    from curate.trainer.data import kept, targets
    from curate.trainer.fit import fit_model, predict

    root, naive, _ = corpus
    rows = kept(read_manifest(naive).table, "train")
    images, y = load_pixels(rows, root, SIZE).images, targets(rows["label"], "fractured")
    runs = [fit_model(images, y, model="compact", epochs=1, batch_size=8, seed=3, deterministic=True)[0]
            for _ in range(2)]
    np.testing.assert_array_equal(predict(runs[0], images), predict(runs[1], images))


# ---- the command line ----------------------------------------------------------------------

def test_curate_train_on_the_command_line_prints_json_and_writes_the_run(corpus, tmp_path):
    from typer.testing import CliRunner

    from curate.cli import app

    _, _, curated = corpus
    result = CliRunner().invoke(app, ["train", str(curated), "--model", "compact", "--epochs", "1",
                                      "--img-size", str(SIZE), "--batch-size", "8",
                                      "--workdir", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["settings"]["model"] == "compact" and summary["test"]["n"] == 8
    assert (tmp_path / "out" / "reports" / "demo").is_dir()


def test_curate_compare_with_a_missing_manifest_is_one_line_and_exit_2(corpus, tmp_path):
    from typer.testing import CliRunner

    from curate.cli import app

    _, naive, _ = corpus
    result = CliRunner().invoke(app, ["compare", "--naive", str(naive), "--curated", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2
    assert "manifest not found" in result.output and "Traceback" not in result.output


def test_folds_help_says_it_takes_k_trainings():
    from typer.testing import CliRunner

    from curate.cli import app

    for command in ("compare", "train"):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "--folds" in result.output
        assert "K trainings" in " ".join(result.output.replace("│", " ").split()), command


def test_curate_help_does_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from curate.cli import app; "
            "CliRunner().invoke(app, ['train', '--help']); print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
