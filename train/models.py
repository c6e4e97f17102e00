"""The bundled models: the published CNN, a compact modern CNN, and MobileNetV2.

Every model takes H x W x channels floats in [0, 1] and ends in one sigmoid unit:
p(positive class), the positive class being "fractured".
"""

from __future__ import annotations

from pathlib import Path

from curate.errors import InputError, UsageError


class WeightsNotFound(InputError):
    """A --weights file that does not exist (nothing is ever downloaded)."""


def seed_cnn(input_shape: tuple[int, int, int]):
    """Exactly the published architecture (23,907,521 parameters at 224 x 224 x 3)."""
    from keras import Input, Sequential, layers

    return Sequential(
        [
            Input(shape=input_shape),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(128, activation="relu"),
            layers.Dense(1, activation="sigmoid", dtype="float32"),  # see build(): float32 head
        ],
        name="seed_cnn",
    )


# An eval-mode compact model runs on batch norm's moving statistics. Keras's default
# momentum (0.99) needs hundreds of steps to forget their start (mean 0, variance 1); the
# runs this tool does have 10-100 steps per epoch, so the eval-mode model squeezed every
# image to about the same p and predicted one class, while the same weights with batch
# statistics ranked val at AUC ~0.7. With 0.9 the statistics catch up in tens of steps.
BN_MOMENTUM = 0.9


def compact(input_shape: tuple[int, int, int]):
    """A small modern CNN: conv + batch norm blocks, global average pooling (~0.4M parameters).

    A strided first convolution and one block per scale keep it cheaper than seed-cnn;
    global pooling instead of Flatten is what removes the 23.9M-weight dense layer.
    He initialisation (the one made for ReLU) keeps each conv's output variance near 1,
    where batch norm's moving variance starts.
    """
    from keras import Input, Sequential, layers

    def block(filters: int, strides: int = 1) -> list:
        return [
            layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, kernel_initializer="he_normal"),
            layers.BatchNormalization(momentum=BN_MOMENTUM),
            layers.ReLU(),
        ]

    return Sequential(
        [
            Input(shape=input_shape),
            *block(32, strides=2),
            layers.MaxPooling2D(2),
            *block(64),
            layers.MaxPooling2D(2),
            *block(128),
            layers.MaxPooling2D(2),
            *block(256),
            layers.GlobalAveragePooling2D(),
            layers.Dropout(0.3),
            layers.Dense(1, activation="sigmoid", dtype="float32"),
        ],
        name="compact",
    )


def mobilenetv2(input_shape: tuple[int, int, int], weights: str | Path | None = None):
    """Keras MobileNetV2 backbone + one sigmoid unit; from scratch, or from a local weights file.

    `weights` must be a local file of the no-top ImageNet weights
    (mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5); nothing is downloaded.
    """
    from keras import Input, Model, applications, layers

    if weights is not None:
        weights = Path(weights)
        if not weights.is_file():
            raise WeightsNotFound(
                f"weights file not found: {weights} (MobileNetV2 weights are never downloaded; "
                "pass a local no-top .h5 file, or leave out --weights to train from scratch)"
            )
        if input_shape[-1] != 3:
            raise UsageError("ImageNet weights need 3 input channels: add --channels 3")
    inputs = Input(shape=input_shape)
    x = layers.Rescaling(2.0, offset=-1.0)(inputs)  # [0, 1] -> [-1, 1], MobileNetV2's input range
    backbone = applications.MobileNetV2(
        input_shape=input_shape, include_top=False, weights=None, pooling="avg"
    )
    if weights is not None:
        try:
            backbone.load_weights(str(weights))
        except (ValueError, OSError) as exc:
            raise InputError(f"{weights}: not MobileNetV2 no-top weights ({str(exc).splitlines()[0]})") from None
    x = backbone(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32")(x)
    return Model(inputs, outputs, name="mobilenetv2")


MODELS = {"seed-cnn": seed_cnn, "compact": compact, "mobilenetv2": mobilenetv2}

# Epochs early stopping waits before it judges a model (seed-cnn: none, as before).
# compact's first epochs' eval-mode val loss measures batch norm's moving statistics
# catching up with the weights, not the model: judged from epoch 1 with patience 3,
# it stopped at epoch 4 and restored epoch 1, a one-class model.
WARMUP_EPOCHS = {"seed-cnn": 0, "compact": 3, "mobilenetv2": 0}
PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16"}  # name -> Keras dtype policy


def build(
    name: str, img_size: int, channels: int = 1, weights: str | Path | None = None, precision: str = "float32"
):
    """A fresh, uncompiled model by its CLI name.

    precision "bfloat16" builds it with Keras's mixed_bfloat16 policy: weights stay float32,
    layers compute in bfloat16 (fast on CPUs with AVX512-BF16/AMX, see train.fit.use_bf16).
    The one-unit sigmoid head is float32 either way, so probabilities are not rounded to
    bfloat16's 8 bits (that would tie AUC ranks).
    """
    import keras

    if name not in MODELS:
        raise UsageError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    if channels not in (1, 3):
        raise UsageError(f"--channels must be 1 or 3, not {channels}")
    if precision not in PRECISIONS:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if name != "mobilenetv2" and weights is not None:
        raise UsageError("--weights is for --model mobilenetv2 only")
    shape = (img_size, img_size, channels)
    # The policy is global in Keras: set it for the layers made here only, then put it back,
    # so the layers of the input pipeline (train.data) stay float32.
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(PRECISIONS[precision])
    try:
        return mobilenetv2(shape, weights) if name == "mobilenetv2" else MODELS[name](shape)
    finally:
        keras.config.set_dtype_policy(before)


GREY_WEIGHTS = (0.299, 0.587, 0.114)  # RGB -> grey as the trainer's loader does it (OpenCV, ITU-R 601)


def for_raw_images(net, img_size: int, channels: int = 1):
    """The trained net behind its preprocessing: what model.keras holds, so plain Keras predicts right.

    In: RGB images, 0-255, any size (e.g. keras.utils.img_to_array(keras.utils.load_img(path)));
    the images of one batch share a size. Inside: greyscale, resized to img_size x img_size (area),
    rescaled by 1/255 and repeated to the net's channels, as the trainer fed it. Upright images
    are expected: the manifest's rotation and EXIF are applied before, not here.
    Only built-in layers, no optimizer: keras.models.load_model needs nothing of curate.
    """
    import keras
    import numpy as np
    from keras import layers

    inputs = keras.Input(shape=(None, None, 3), name="rgb_0_255")
    to_grey = layers.Dense(1, use_bias=False, trainable=False, dtype="float32", name="greyscale")
    x = to_grey(inputs)
    to_grey.set_weights([np.array(GREY_WEIGHTS, np.float32).reshape(3, 1)])
    x = layers.Resizing(img_size, img_size, interpolation="area", dtype="float32", name="resize")(x)
    x = layers.Rescaling(1.0 / 255.0, dtype="float32", name="rescale")(x)
    if channels == 3:
        x = layers.Concatenate(dtype="float32", name="grey_to_rgb")([x, x, x])
    bare = net.__class__.from_config(net.get_config())  # the same layers without the compile state,
    bare.set_weights(net.get_weights())  # which would name the optimizer (FusedAdam) in the file
    return keras.Model(inputs, bare(x), name=f"{net.name}_on_raw_images")
