"""`curate.trainer` in a source checkout: the code lives in the repository's top-level train/ folder.

An installed curate (`pip install .`) has train/'s files here instead (pyproject.toml maps
`curate.trainer` to train/), so this file exists only in a checkout. It loads train/ under the name
`curate.trainer`, so a user's own `train.py` can never shadow the trainer.
"""

import sys
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

_folder = Path(__file__).resolve().parents[2] / "train"
_spec = spec_from_file_location(__name__, _folder / "__init__.py", submodule_search_locations=[str(_folder)])
_module = module_from_spec(_spec)
sys.modules[__name__] = _module  # the import system hands out this entry, not the shim
_spec.loader.exec_module(_module)
