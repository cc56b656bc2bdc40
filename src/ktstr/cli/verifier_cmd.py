"""`ktstr verifier [SOURCE...] [--kernel SPEC]... [-k NAME]... [--topo T]...`: BPF verifier sweep.

Which schedulers: those declared with `declare_scheduler` in the SOURCEs (Python files,
directories searched for test files as pytest does, or importable module names), which
the command imports. Without a SOURCE, or with `--examples`, the kernel's example
schedulers that `ktstr sched build` built are declared too. Which kernels: every
`--kernel` given (default: the newest cached), each scheduler keeping those its
`kernels` filter accepts. One VM per cell; the table lists each program the verifier
accepted with its `verified_insns`, and each scheduler that failed to load with the
verifier's log. Exit code 1 when any cell failed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ktstr.errors import ConfigError, KtstrError
from ktstr.kernelid import KernelEntry
from ktstr.pyimport import import_file
from ktstr.runner.verifier import CellResult, select, sweep_cells, verify_cell
from ktstr.scheduler import SCHEDULERS, Scheduler
from ktstr.settings import settings
from ktstr.topology import Topology
from ktstr.vm.kernel import Kernel, resolve_kernel
from ktstr.vm.sched import read_manifest

if TYPE_CHECKING:
    from rich.console import Console


def register(sub: Any) -> None:
    p = sub.add_parser("verifier", help="load every declared scheduler in a VM and report "
                       "what the BPF verifier accepted", description=__doc__)
    p.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="Python file, directory or module declaring schedulers")
    p.add_argument("--kernel", action="append", default=[], metavar="SPEC",
                   help="kernel to verify on (repeatable; default: the newest cached)")
    p.add_argument("-k", dest="names", action="append", default=[], metavar="NAME",
                   help="only the scheduler with this name (repeatable)")
    p.add_argument("--topo", action="append", default=[], metavar="TOPO",
                   help="topology such as 1n1l2c1t (repeatable; default: each "
                   "scheduler's own)")
    p.add_argument("--examples", action="store_true", help="also the kernel's example "
                   "schedulers when SOURCEs are given")
    p.add_argument("--run-dir", type=Path, metavar="DIR",
                   help="where console logs and sidecars go (default: a new temp dir)")
    p.add_argument("--cold", action="store_true", help="boot every VM (no snapshot restore; "
                   "env KTSTR_COLD=1)")
    p.set_defaults(func=run)


def import_sources(sources: list[str]) -> None:
    """Import each SOURCE so that its `declare_scheduler` calls fill the registry."""
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files = sorted({*path.rglob("test_*.py"), *path.rglob("*_test.py")})
            if not files:
                raise ConfigError(f"directory {source} holds no test_*.py or *_test.py; "
                                  "hint: name the file that declares the schedulers")
            for f in files:
                _import_file(f)
        elif path.suffix == ".py" or path.exists():
            if not path.is_file():
                raise ConfigError(f"{source} does not exist; hint: a Python file, a "
                                  "directory or a module name")
            _import_file(path)
        else:
            try:
                importlib.import_module(source)
            except ImportError as e:
                raise ConfigError(f"cannot import module {source!r}: {e}; hint: a Python "
                                  "file, a directory, or a module on sys.path") from None


def _import_file(path: Path) -> None:
    path = path.resolve()
    sys.path.insert(0, str(path.parent))  # sibling imports, as pytest's rootdir insertion
    name = f"ktstr_verifier_src_{abs(hash(str(path)))}"
    try:
        import_file(name, path)
    except ImportError as e:
        raise ConfigError(str(e)) from None


def example_schedulers(kernels: list[Kernel]) -> list[Scheduler]:
    """The example schedulers built for any of the kernels, as plain declarations."""
    names: dict[str, None] = {}
    for kernel in kernels:
        for name in (read_manifest(kernel) or {}).get("schedulers", []):
            names[name] = None
    return [Scheduler(n) for n in names]


def resolve_kernels(specs: list[str]) -> dict[str, Kernel]:
    """Each `--kernel` spec (once) and the kernel it names; none given: the newest cached
    one, labelled by its cache key."""
    if not specs:
        kernel = resolve_kernel(None)
        return {kernel.key: kernel}
    return {s: resolve_kernel(s) for s in dict.fromkeys(specs)}


def run(args: argparse.Namespace) -> int:
    kernels = resolve_kernels(args.kernel)
    entries = [KernelEntry(raw, kernel) for raw, kernel in kernels.items()]
    topologies = [Topology.parse(t) for t in args.topo]
    import_sources(args.sources)
    declared = list(SCHEDULERS.values())
    if args.sources and not declared and not args.examples:
        raise ConfigError(f"{', '.join(args.sources)} declared no scheduler; hint: "
                          "declare_scheduler(...) at module level, or --examples")
    if not args.sources or args.examples:
        known = {s.name for s in declared}
        declared += [s for s in example_schedulers(list(kernels.values())) if s.name not in known]
    cells = sweep_cells(select(declared, args.names), entries, topologies)
    if not cells:
        raise ConfigError("nothing to verify: no scheduler with a binary passes the kernel "
                          f"filters for {', '.join(e.raw for e in entries)}; hint: "
                          "`ktstr sched build`, or check the schedulers' kernels=")
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="ktstr-verifier-"))
    # rich only here: every `ktstr` command imports this module, and rich costs 20 ms.
    from rich.console import Console

    # Not a terminal (CI logs, a pipe): wide enough that names are not cut.
    console = Console(width=None if sys.stdout.isatty() else 160)
    results = []
    for i, cell in enumerate(cells, 1):
        console.print(f"[{i}/{len(cells)}] {cell.cell_id} ...", highlight=False)
        started = time.monotonic()
        try:
            res = verify_cell(cell, run_dir, cold=args.cold or settings().cold)
        except KtstrError as e:
            res = CellResult(cell, passed=False, error=str(e))
        console.print(f"  {'ok' if res.passed else 'FAILED'} in "
                      f"{time.monotonic() - started:.0f}s", highlight=False)
        results.append(res)
    render(console, results)
    console.print(f"run directory: {run_dir}", highlight=False)
    return 0 if all(r.passed for r in results) else 1


def render(console: Console, results: list[CellResult]) -> None:
    from rich.table import Table

    table = Table(title="BPF verifier sweep")
    for col in ("scheduler", "kernel", "topology", "result", "program", "type"):
        table.add_column(col)
    table.add_column("verified_insns", justify="right")
    for r in results:
        c = r.cell
        head = [c.scheduler.name, c.entry.label, str(c.topology),
                "[green]pass[/]" if r.passed else "[red]FAIL[/]"]
        if not r.programs:
            table.add_row(*head, "-", "-", "-")
        for i, p in enumerate(r.programs):
            table.add_row(*(head if i == 0 else ["", "", "", ""]), str(p.get("name", "?")),
                          str(p.get("type", "?")), str(p.get("verified_insns", "?")))
    console.print(table)
    for r in results:
        if r.passed:
            continue
        console.print(f"[red]{r.cell.cell_id}[/]: {r.error}", highlight=False)
        if r.excerpt:
            console.print(r.excerpt, markup=False, highlight=False)
    failed = sum(not r.passed for r in results)
    console.print(f"{len(results) - failed} passed, {failed} failed", highlight=False)
