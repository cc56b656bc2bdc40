"""What KASLR done by the host (KTSTR_HOST_KASLR, ktstr.vm.hostkaslr) saves on a cold boot.

Three contenders, one cold trivial run each per round, round robin: the bzImage (KASLR by
its decompressor, the default), the host-relocated vmlinux booted by PVH, and the PVH
vmlinux without KASLR (`KTSTR_KASLR=off`). Printed per contender, median [range]:
qemu start -> ready for orders (`boot_s`), the guest's uptime at hello, their difference
(what happens before the guest's clock starts: qemu, the firmware and, for the bzImage,
the decompressor), and the run's wall time. Then the host's cost of relocating: parsing
the vmlinux's relocation table (once per process) and relocating + writing (per boot).

    .venv/bin/python bench/host_kaslr.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench import trivial_test  # noqa: E402
from ktstr.runner.vmrun import TestLocation, run_in_vm  # noqa: E402
from ktstr.settings import ENV_HOST_KASLR, ENV_KASLR, settings  # noqa: E402
from ktstr.vm import hostkaslr  # noqa: E402
from ktstr.vm.kernel import resolve_kernel  # noqa: E402

CONTENDERS = {  # name -> (KTSTR_KASLR, KTSTR_HOST_KASLR)
    "bzImage (KASLR)": ("on", "off"),
    "host KASLR (PVH)": ("on", "on"),
    "PVH, nokaslr": ("off", "off"),
}


def cold_run(kernel: str | None) -> dict[str, float]:
    where = TestLocation(test_id="bench::trivial", module_file=trivial_test.__file__,
                         module_name=trivial_test.__name__, qualname="trivial",
                         sys_path=tuple(sys.path), cwd=os.getcwd())
    runs = Path(tempfile.mkdtemp(prefix="ktstr-bench-"))
    t0 = time.monotonic()
    r = run_in_vm(trivial_test.trivial, where, kernel_spec=kernel, run_dir=runs, cold=True)
    wall = time.monotonic() - t0 - r.cpu_wait_s
    if not r.passed:
        raise SystemExit(f"trivial test failed: {r.outcome} {r.error}; console: {r.console_log}")
    shutil.rmtree(runs)
    uptime = r.guest_uptime_at_hello_s
    return {"boot_s": r.boot_s, "uptime": uptime, "before_clock": r.boot_s - uptime,
            "wall": wall}


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s [{min(values):.2f}-{max(values):.2f}]"


def host_cost(kernel: str | None, repeat: int) -> None:
    vmlinux = resolve_kernel(kernel).host_kaslr_image()
    if vmlinux is None:
        print("host cost: this kernel cannot be relocated by the host")
        return
    t0 = time.perf_counter()
    image = hostkaslr.parse_image(vmlinux.read_bytes())
    parse = time.perf_counter() - t0
    relocate, write = [], []
    dest = Path(tempfile.mkdtemp(prefix="ktstr-bench-", dir="/dev/shm")) / "vmlinux"
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = image.relocate(random.choice(image.offsets()))
        t1 = time.perf_counter()
        dest.write_bytes(out)
        write.append(time.perf_counter() - t1)
        relocate.append(t1 - t0)
    shutil.rmtree(dest.parent)
    print(f"host cost: parse {parse:.3f} s once per process ({len(image.sites32)} 32-bit, "
          f"{len(image.sites32_inverse)} inverse, {len(image.sites64)} 64-bit sites); "
          f"per boot relocate {fmt(relocate)}, write {fmt(write)} "
          f"({len(image.image) >> 20} MiB to /dev/shm); {len(image.offsets())} offsets")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kernel", default=None)
    args = ap.parse_args()
    host_cost(args.kernel, 5)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in CONTENDERS}
    loads = []
    for n in range(args.rounds):
        for name, (kaslr, host) in CONTENDERS.items():
            os.environ[ENV_KASLR], os.environ[ENV_HOST_KASLR] = kaslr, host
            settings.cache_clear()
            loads.append(os.getloadavg()[0])
            results[name].append(cold_run(args.kernel))
            print(f"round {n + 1} {name}: " + ", ".join(
                f"{k} {v:.2f}" for k, v in results[name][-1].items()), flush=True)
    print(f"\nloadavg {min(loads):.1f}-{max(loads):.1f}, {args.rounds} rounds")
    for name, runs in results.items():
        print(f"{name:18} " + "  ".join(f"{k} {fmt([r[k] for r in runs])}"
                                         for k in ("boot_s", "uptime", "before_clock",
                                                   "wall")))


if __name__ == "__main__":
    main()
