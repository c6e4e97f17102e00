"""curate: turn a raw, messy X-ray dataset into a clean, leakage-free one.

From Python, one function per command, with the command's options as keywords:

    import curate
    result = curate.run("xray-messy", workdir="out")      # curate run ROOT
    result.manifest, result.duplicates, result.audit       # DataFrames
    result.summary, result.paths                           # summary.json's dict, files written
    curate.audit(root) / curate.find_duplicates(root)      # curate audit / curate dups
    curate.train(manifest_csv, model="compact")            # curate train (needs the [train] extra)
    curate.compare(naive_csv, manifest_csv).metrics        # curate compare: a tidy DataFrame

The stages themselves (scan, audit, hashing, dedup, orient, split, manifest) are modules of this
package (dedup with candidates, verify, original and traces); the trainer is `curate.trainer`.
"""

import sys
import types
from importlib.metadata import PackageNotFoundError, version

from curate.api import (AuditResult, CompareResult, DuplicatesResult, RunResult, audit, compare,
                        find_duplicates, run, train)

try:
    __version__ = version("curate")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
del PackageNotFoundError, version

__all__ = ["run", "audit", "find_duplicates", "train", "compare",
           "RunResult", "AuditResult", "DuplicatesResult", "CompareResult", "__version__"]


class _Package(types.ModuleType):
    """Importing the stage module curate.audit sets the package's `audit` attribute to that module;
    the function of the same name stays (the module is still in sys.modules for `from curate.audit
    import ...`)."""

    def __setattr__(self, name, value):
        if name in __all__ and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
