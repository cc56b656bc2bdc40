#!/usr/bin/env python3
"""Wall time of a trivial ktstr test, command to result, next to virtme-ng.

    .venv/bin/python bench/boot_overhead.py [--runs 5] [--kernel SPEC] [--cold-only]

Prints the median and range of N runs (round-robin, so a slow minute of the
host hurts every contender alike) for:
  - `ktstr test bench/trivial_test.py` as a subprocess (what a user types),
    restoring the saved guest (ktstr.vm.snapshot), and with `--cold`,
  - the same test through `run_in_vm` in this process (no pytest start-up),
    restored, cold (the bzImage: KASLR) and cold with KTSTR_KASLR=off (the PVH
    vmlinux), with the guest's uptime at the agent's hello of the cold boots
    and qemu start -> ready of the restores,
  - `vng --verbose --disable-kvm --force-9p --exec true` on the same kernel, when
    virtme-ng is installed (`pip install virtme-ng`; not a ktstr dependency),
    and each contender's median as a multiple of vng's.
`--cold-only` runs only the cold contenders and vng (the boot's fixed cost).

A ktstr run first waits for host CPUs that other VMs hold (ktstr.vm.cpulock);
the bench makes vng take them the same way, and the figures leave that wait out
(printed apart): every contender runs while no other ktstr VM does.
vng finds the kernel's modules (9p is one) next to the image: when the host has
no /lib/modules/<release>, the bench lays the cached kernel's modules out in a
temporary root for it. /proc/loadavg is printed before and after: other VMs on
the host slow every contender, and only ratios within one round robin compare.
"""

from __future__ import annotations

import argparse
import json
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
from ktstr.vm.cpulock import host_cpus, reserve_host_cpus  # noqa: E402
from ktstr.vm.kernel import Kernel, resolve_kernel  # noqa: E402

VNG = "vng --verbose --exec true"

#: A contender's run: its wall time less any wait for host CPUs, and that wait.
Run = Callable[[str], tuple[float, float]]


def ktstr_cli(cold: bool) -> Run:
    def run(kernel: str) -> tuple[float, float]:
        ktstr = Path(sys.executable).parent / "ktstr"
        with tempfile.TemporaryDirectory() as runs:
            t0 = time.monotonic()
            out = subprocess.run([str(ktstr), "test", "--kernel", kernel, "-q",
                                  *(["--cold"] if cold else []),
                                  "-p", "no:cacheprovider", "--ktstr-run-dir", runs,
                                  str(HERE / "trivial_test.py")],
                                 capture_output=True, text=True, check=False)
            wall = time.monotonic() - t0
            wait = sum(float(json.loads(p.read_text()).get("cpu_wait_s", 0.0))
                       for p in Path(runs).rglob("*.json"))
        if out.returncode != 0:
            raise SystemExit(f"ktstr test failed:\n{out.stdout}\n{out.stderr}")
        return wall - wait, wait
    return run


UPTIMES: dict[str, list[float]] = {}  # guest uptime at hello, per cold contender
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


def ktstr_api(name: str, cold: bool, kaslr: bool = True) -> Run:
    def run(kernel: str) -> tuple[float, float]:
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
        if r.boot_mode != ("cold" if cold else "restored"):
            raise SystemExit(f"expected a {'cold' if cold else 'restored'} run, got "
                             f"{r.boot_mode} ({r.restore_fallback})")
        if cold:
            UPTIMES.setdefault(name, []).append(r.guest_uptime_at_hello_s)
        else:
            READY.append(r.boot_s)
        return wall - r.cpu_wait_s, r.cpu_wait_s
    return run


def vng_image(kernel: Kernel, scratch: Path) -> Path:
    """The image to give vng: the kernel's own, or a link to it in a root that also
    holds its modules (vng looks for <root>/lib/modules/<release> next to the image)."""
    if Path("/lib/modules", kernel.version).is_dir() or kernel.modules_dir is None:
        return kernel.image
    moddir = scratch / "lib/modules" / kernel.version
    (moddir / "kernel").mkdir(parents=True)
    for ko in kernel.modules_dir.glob("*.ko"):
        shutil.copy(ko, moddir / "kernel")
    subprocess.run(["depmod", "-a", "-b", str(scratch), kernel.version], check=True,
                   capture_output=True)
    (scratch / "boot").mkdir()
    image = scratch / "boot" / f"vmlinuz-{kernel.version}"
    image.symlink_to(kernel.image)
    return image


def vng(image: Path) -> Run:
    def run(_kernel: str) -> tuple[float, float]:
        # vng's VM (one vCPU per host CPU) holds the host CPUs as a ktstr VM would:
        # each then runs while no other ktstr VM does, and neither pays for the other.
        t0 = time.monotonic()
        with reserve_host_cpus(len(host_cpus()), test_id="bench::vng"):
            wait = time.monotonic() - t0
            t0 = time.monotonic()
            # `true`, plus a marker: without a terminal vng exits 255 and runs the
            # command through its console fallback, whose output only --verbose shows.
            # Success is the marker; --verbose also prints the whole kernel log, as
            # ktstr does.
            out = subprocess.run(["vng", "--verbose", "--disable-kvm", "--force-9p", "-r",
                                  str(image), "--exec", "true && echo ktstr-bench-ok"],
                                 capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                 check=False)
            wall = time.monotonic() - t0
        said = out.stdout + out.stderr
        # The console fallback now and then loses the command's own output; its
        # init's report of the exit status is the other proof.
        if "ktstr-bench-ok" not in said and "script exited with code 0" not in said:
            raise SystemExit(f"vng failed (it needs the kernel's modules in /lib/modules/"
                             f"<version>):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        return wall, wait
    return run


def _range(ts: list[float]) -> str:
    return f"median {statistics.median(ts):6.2f} s  (min {min(ts):.2f}, max {max(ts):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--kernel", default=None)
    ap.add_argument("--cold-only", action="store_true",
                    help="only the cold boots (KASLR and PVH) and vng")
    args = ap.parse_args()
    kernel = resolve_kernel(args.kernel)
    contenders: dict[str, Run] = {}
    if not args.cold_only:
        trivial_in_vm(kernel.key, cold=False)  # saves the snapshot if there is none yet
        contenders |= {
            "ktstr test, restored (CLI)": ktstr_cli(cold=False),
            "ktstr test --cold (CLI)": ktstr_cli(cold=True),
            "run_in_vm, restored (API)": ktstr_api("restored", cold=False),
        }
    contenders |= {
        "run_in_vm, cold (API)": ktstr_api("cold, KASLR (bzImage)", cold=True),
        "run_in_vm, cold, KTSTR_KASLR=off (PVH)": ktstr_api("cold, KTSTR_KASLR=off (PVH)",
                                                            cold=True, kaslr=False),
    }
    with tempfile.TemporaryDirectory(prefix="ktstr-bench-vng-") as scratch:
        if shutil.which("vng"):
            contenders[VNG] = vng(vng_image(kernel, Path(scratch)))
        load_before = Path("/proc/loadavg").read_text().split()[:3]
        times: dict[str, list[float]] = {name: [] for name in contenders}
        waits: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.runs):
            for name, fn in contenders.items():
                wall, wait = fn(kernel.key)
                times[name].append(wall)
                waits[name].append(wait)
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    print(f"kernel {kernel.key}, {args.runs} runs each, host CPUs {os.cpu_count()}, "
          f"loadavg before {' '.join(load_before)}, after {' '.join(load_after)}")
    print("wall time, less the wait for host CPUs held by other VMs:")
    vng_median = statistics.median(times[VNG]) if VNG in times else None
    for name, ts in times.items():
        ratio = f"  {statistics.median(ts) / vng_median:.2f}x vng" if vng_median else ""
        waited = f"  (waited for CPUs {sum(waits[name]):.1f} s in all)" if any(
            waits[name]) else ""
        print(f"  {name:38s} {_range(ts)}{ratio}{waited}")
    for name, ups in UPTIMES.items():
        print(f"  {'guest uptime at hello, ' + name:38s} {_range(ups)}")
    if READY:
        print(f"  {'restore: qemu start -> guest running':38s} {_range(READY)}")
    if vng_median is None:
        print("  virtme-ng not installed: `pip install virtme-ng` to compare")


if __name__ == "__main__":
    main()
