#!/usr/bin/env python3
"""Wall time of a trivial ktstr test, command to result, next to virtme-ng.

    .venv/bin/python bench/boot_overhead.py [--runs 5] [--kernel SPEC]

Prints the median and range of N runs (round-robin, so a slow minute of the
host hurts every contender alike) for:
  - `ktstr test bench/trivial_test.py` as a subprocess (what a user types),
    restoring the saved guest (ktstr.vm.snapshot), and with `--cold`,
  - the same test through `run_in_vm` in this process (no pytest start-up),
    restored, cold (the bzImage: KASLR) and cold with KTSTR_KASLR=off (the PVH
    vmlinux), with the guest's uptime at the agent's hello of the
    cold boots and qemu start -> ready of the restores,
  - `vng --verbose --disable-kvm --force-9p --exec true` on the same kernel, when
    virtme-ng is installed (`pip install virtme-ng`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench import trivial_test  # noqa: E402
from ktstr.runner.vmrun import RunResult, TestLocation, run_in_vm  # noqa: E402
from ktstr.settings import ENV_KASLR, settings  # noqa: E402
from ktstr.vm.kernel import resolve_kernel  # noqa: E402


def ktstr_cli(cold: bool) -> Callable[[str], float]:
    def run(kernel: str) -> float:
        ktstr = Path(sys.executable).parent / "ktstr"
        with tempfile.TemporaryDirectory() as runs:
            t0 = time.monotonic()
            out = subprocess.run([str(ktstr), "test", "--kernel", kernel, "-q",
                                  *(["--cold"] if cold else []),
                                  "-p", "no:cacheprovider", "--ktstr-run-dir", runs,
                                  str(HERE / "trivial_test.py")],
                                 capture_output=True, text=True, check=False)
            wall = time.monotonic() - t0
        if out.returncode != 0:
            raise SystemExit(f"ktstr test failed:\n{out.stdout}\n{out.stderr}")
        return wall
    return run


UPTIMES: list[float] = []  # guest uptime at hello, cold boots
READY: list[float] = []  # qemu start -> restored guest running, restores


def trivial_in_vm(kernel: str, cold: bool) -> RunResult:
    where = TestLocation(test_id="bench::trivial", module_file=trivial_test.__file__,
                         module_name=trivial_test.__name__, qualname="trivial",
                         sys_path=tuple(sys.path), cwd=os.getcwd())
    runs = Path(tempfile.mkdtemp(prefix="ktstr-bench-"))
    r = run_in_vm(trivial_test.trivial, where, kernel_spec=kernel, run_dir=runs, cold=cold)
    if not r.passed:
        raise SystemExit(f"trivial test failed: {r.outcome} {r.error}; console: {r.console_log}")
    shutil.rmtree(runs)
    return r


def ktstr_api(cold: bool, kaslr: bool = True) -> Callable[[str], float]:
    def run(kernel: str) -> float:
        # KASLR has no option of its own: the setting, read anew for this run.
        os.environ[ENV_KASLR] = "on" if kaslr else "off"
        settings.cache_clear()
        t0 = time.monotonic()
        try:
            r = trivial_in_vm(kernel, cold)
        finally:
            os.environ.pop(ENV_KASLR)
            settings.cache_clear()
        wall = time.monotonic() - t0
        if not kaslr:
            return wall
        if r.boot_mode != ("cold" if cold else "restored"):
            raise SystemExit(f"expected a {'cold' if cold else 'restored'} run, got "
                             f"{r.boot_mode} ({r.restore_fallback})")
        (UPTIMES if cold else READY).append(
            r.guest_uptime_at_hello_s if cold else r.boot_s)
        return wall
    return run


def vng(image: str) -> Callable[[str], float]:
    def run(_kernel: str) -> float:
        t0 = time.monotonic()
        # `true`, plus a marker: without a terminal vng exits 255 and runs the command
        # through its console fallback, whose output only --verbose shows. Success is
        # the marker; --verbose also prints the whole kernel log, as ktstr does.
        out = subprocess.run(["vng", "--verbose", "--disable-kvm", "--force-9p", "-r", image,
                              "--exec", "true && echo ktstr-bench-ok"], capture_output=True,
                             text=True, stdin=subprocess.DEVNULL, check=False)
        wall = time.monotonic() - t0
        if "ktstr-bench-ok" not in out.stdout + out.stderr:
            raise SystemExit(f"vng failed (it needs the kernel's modules in /lib/modules/"
                             f"<version>):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        return wall
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--kernel", default=None)
    args = ap.parse_args()
    kernel = resolve_kernel(args.kernel)
    trivial_in_vm(kernel.key, cold=False)  # saves the snapshot if there is none yet
    contenders: dict[str, Callable[[str], float]] = {
        "ktstr test, restored (CLI)": ktstr_cli(cold=False),
        "ktstr test --cold (CLI)": ktstr_cli(cold=True),
        "run_in_vm, restored (API)": ktstr_api(cold=False),
        "run_in_vm, cold (API)": ktstr_api(cold=True),
        "run_in_vm, cold, KTSTR_KASLR=off (PVH)": ktstr_api(cold=True, kaslr=False),
    }
    if shutil.which("vng"):
        contenders["vng --verbose --exec true"] = vng(str(kernel.image))
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.runs):
        for name, fn in contenders.items():
            times[name].append(fn(kernel.key))
    print(f"kernel {kernel.key}, {args.runs} runs each, host CPUs {os.cpu_count()}")
    for name, ts in times.items():
        print(f"  {name:38s} median {statistics.median(ts):6.2f} s  "
              f"(min {min(ts):.2f}, max {max(ts):.2f})")
    if UPTIMES:
        print(f"  {'cold: guest uptime at the hello':38s} median "
              f"{statistics.median(UPTIMES):6.2f} s")
    if READY:
        print(f"  {'restore: qemu start -> guest running':38s} median "
              f"{statistics.median(READY):6.2f} s")
    if "vng --verbose --exec true" not in times:
        print("  virtme-ng not installed: `pip install virtme-ng` to compare")


if __name__ == "__main__":
    main()
