"""The lazy package root: every public name resolves, and a low module loads alone."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import ktstr

ROOT_SOURCE = Path(ktstr.__file__)


def _type_checking_imports() -> dict[str, str]:
    """Name -> module, as the root's `if TYPE_CHECKING:` block imports them."""
    tree = ast.parse(ROOT_SOURCE.read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If)
                 and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
    names: dict[str, str] = {}
    for stmt in block.body:
        assert isinstance(stmt, ast.ImportFrom) and stmt.module is not None
        for alias in stmt.names:
            names[alias.name] = (f"{stmt.module}.{alias.name}" if stmt.module == "ktstr"
                                 else stmt.module)
    return names


def test_type_checking_block_names_the_same_homes_as_the_lazy_table() -> None:
    assert _type_checking_imports() == ktstr._PUBLIC


@pytest.mark.parametrize("name", ktstr.__all__)
def test_public_name_is_the_defining_modules_object(name: str) -> None:
    home = importlib.import_module(ktstr._PUBLIC[name])
    expected = home if home.__name__ == f"ktstr.{name}" else getattr(home, name)
    assert getattr(ktstr, name) is expected


def test_star_import_gives_every_public_name() -> None:
    namespace: dict[str, object] = {}
    exec("from ktstr import *", namespace)
    assert set(ktstr.__all__) <= set(namespace)


def test_unknown_name_raises_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="no attribute 'ktstr_tset'"):
        ktstr.ktstr_tset  # noqa: B018


def test_importing_a_system_reader_loads_no_upper_layer() -> None:
    code = ("import sys, ktstr.system.fs; "
            "print('\\n'.join(m for m in sys.modules if m.startswith('ktstr')))")
    loaded = set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                text=True).stdout.split())
    upper = {"ktstr.scenario", "ktstr.workload", "ktstr.work", "ktstr.checks", "ktstr.runner",
             "ktstr.vm", "ktstr.guest", "ktstr.monitor", "ktstr.testdef", "ktstr.scheduler"}
    assert "ktstr.system.fs" in loaded
    assert not {m for m in loaded if m.split(".")[0:2] and ".".join(m.split(".")[:2]) in upper}
