"""The bundled trainer: manifests in, models and leakage-free numbers out.

    from curate.trainer import train_manifest
    from curate.trainer.compare import compare
    train_manifest("manifests/NAME/manifest.csv", model="compact", epochs=10)
    compare("manifests/NAME/naive.csv", "manifests/NAME/manifest.csv", repeats=3)

This half reads manifests only, never folder layouts. The names below are imported on first
use, so `import curate.trainer` stays cheap until TensorFlow is actually needed. (`compare` is not
among them: `curate.trainer.compare` is the module's name.)
"""

__all__ = ["train_manifest", "metrics", "read_manifest", "load_pixels", "build"]

_WHERE = {
    "train_manifest": ".fit",
    "metrics": ".evaluate",
    "read_manifest": ".data",
    "load_pixels": ".data",
    "build": ".models",
}


def __getattr__(name):
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
