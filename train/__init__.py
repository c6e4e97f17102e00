"""The bundled trainer: manifests in, models and leakage-free numbers out.

    from train import train_manifest
    from train.compare import compare
    train_manifest("manifests/NAME/manifest.csv", model="compact", epochs=10)
    compare("manifests/NAME/naive.csv", "manifests/NAME/manifest.csv", repeats=3)

This half reads manifests only, never folder layouts. The names below are imported on first
use, so `import train` stays cheap until TensorFlow is actually needed. (`compare` is not
among them: `train.compare` is the module's name.)
"""

__all__ = ["train_manifest", "metrics", "read_manifest", "load_pixels", "build"]

_WHERE = {
    "train_manifest": "train.fit",
    "metrics": "train.evaluate",
    "read_manifest": "train.data",
    "load_pixels": "train.data",
    "build": "train.models",
}


def __getattr__(name):
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'train' has no attribute {name!r}")
