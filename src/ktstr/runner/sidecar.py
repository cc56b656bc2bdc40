"""Sidecar files: one JSON document per test run, written atomically.

Reports, comparisons and plots read only sidecars, so they work on results
gathered on other machines. A sidecar is written even when the run crashed or
timed out: the outcome then says so and the console tail is inside.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ktstr.atomicfile import atomic_write

SCHEMA = 1


def safe_name(test_id: str) -> str:
    """A file name for a test id such as `examples/test_x.py::mixed_workloads[1n2l2c1t]`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", test_id).strip("_")[:200] or "test"


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    with atomic_write(path, durable=True) as f:
        json.dump(doc, f, indent=2, sort_keys=True, default=str)


def read_sidecar(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"{path}: sidecar schema {doc.get('schema')!r}, expected {SCHEMA}")
    return doc
