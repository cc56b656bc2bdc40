"""Importing a test or declarations file by its path, under a name of the caller's choice.

The guest agent imports a test's module from the same path the host collected
it from, and `ktstr verifier` imports the files that declare schedulers; both
need the module registered in `sys.modules` before it runs (dataclasses and
pickling look it up there).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def import_file(name: str, path: str | Path) -> ModuleType:
    """Import `path` as module `name`; ImportError if it is not a Python module."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
