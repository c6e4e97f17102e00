"""What `curate train` leaves behind: a model.keras that does its own preprocessing, results beside the
manifest's workdir, any two labels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curate.errors import CurateError
from curate.trainer.data import choose_positive, find_positive, prediction_column
from tests.conftest import radiograph
from tests.test_train_pipeline import SIZE, make_corpus


def test_the_saved_model_sees_a_raw_image_as_the_trainer_fed_the_net():
    """RGB 0-255 at any size in; inside: grey, resize, /255 (and 3 channels) as the loader and tf.data do."""
    import cv2
    import keras

    from curate.trainer.models import build, for_raw_images

    keras.utils.set_random_seed(1)
    for channels in (1, 3):
        net = build("compact", 48, channels)
        grey = radiograph(3, (300, 240))
        rgb = np.stack([grey, np.roll(grey, 5, 0), np.roll(grey, 9, 1)], axis=-1)  # a colour image
        fed = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (48, 48), interpolation=cv2.INTER_AREA)
        fed = np.repeat(fed[None, ..., None] / 255.0, channels, axis=-1).astype(np.float32)
        want = float(net.predict(fed, verbose=0)[0, 0])
        got = float(for_raw_images(net, 48, channels).predict(rgb[None].astype(np.float32), verbose=0)[0, 0])
        wrong = float(net.predict(np.repeat(fed * 255, 1, axis=0), verbose=0)[0, 0])  # no rescale
        assert abs(got - want) < 0.01 and abs(wrong - want) > 0.05, (channels, got, want, wrong)


def test_any_two_labels_have_a_positive_said_in_one_line():
    assert find_positive(["Non_fractured", "Fractured"]) == "Fractured"
    assert choose_positive(["malignant", "benign"]) == (
        "malignant", "positive class: 'malignant' (the second of 'benign', 'malignant' in sorted order; "
                     "--positive-label picks the other)")
    assert choose_positive(["positive", "negative"], "NEGATIVE")[0] == "negative"
    assert prediction_column("not fractured") == "p_not_fractured" and prediction_column("Malignant") == "p_malignant"
    with pytest.raises(CurateError, match="three|two classes"):
        find_positive(["a", "b", "c"])


def test_train_with_other_labels_writes_beside_the_manifest_and_names_columns_after_the_positive(
        tmp_path, monkeypatch):
    root, _, curated = make_corpus(tmp_path, n_groups=16)
    table = pd.read_csv(curated, dtype=str, keep_default_na=False)
    table["label"] = table["label"].map({"fractured": "positive", "not fractured": "negative"})
    table.to_csv(curated, index=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # results must not land in the current folder

    from curate.trainer.fit import train_manifest

    result = train_manifest(curated, model="compact", epochs=1, batch_size=8, img_size=SIZE)
    assert result.out_dir.parent == tmp_path / "work" / "reports" / "demo"
    assert not any(elsewhere.iterdir())
    metrics = json.loads((result.out_dir / "metrics.json").read_text())
    assert metrics["positive_label"] == "positive" and "sorted order" in metrics["positive_note"]
    preds = pd.read_csv(result.out_dir / "predictions.csv")
    assert "p_positive" in preds and "p_fractured" not in preds
    # the returned model is model.keras's: raw RGB images of any size in
    pixels = np.asarray(Image.open(root / preds["path"][0]).convert("RGB"), np.float32)
    p = float(result.model.predict(pixels[None], verbose=0)[0, 0])
    assert abs(p - preds["p_positive"][0]) < 0.02
