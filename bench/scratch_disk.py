#!/usr/bin/env python3
"""What the scratch disk costs at boot and what it changes for the block-I/O work types.

    .venv/bin/python bench/scratch_disk.py [--runs 3] [--kernel SPEC] [--secs 3]

Two guests, round-robin (a slow minute of the host hurts both alike):
  - "before": an initramfs without virtio_blk and no disk (`disk_mb=0`), what every
    guest was before the scratch disk;
  - "after": virtio_blk loaded and the default 256 MiB disk.
For each: cold boot (qemu start -> the agent's hello, and the guest's uptime then)
and restore (qemu start -> the restored guest running), then, in a restored guest,
the rate of IoSyncWrite, IoRandRead, IoConvoy and Sequence(Io) workers (one worker
per type, one type at a time, `--secs` each): work units per second and the share
of the run the worker spent on a CPU. The same file runs in the guest with
`--guest-rates` (it sees this tree at the same path).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ktstr.protocol import ShellRequest  # noqa: E402
from ktstr.runner.boot import boot  # noqa: E402
from ktstr.runner.vmrun import BOOT_BUDGET_S, vm_spec  # noqa: E402
from ktstr.topology import Topology  # noqa: E402
from ktstr.vm import kmod  # noqa: E402
from ktstr.vm.accel import choose_accel  # noqa: E402
from ktstr.vm.initramfs import build_initramfs  # noqa: E402
from ktstr.vm.kernel import cache_root, resolve_kernel  # noqa: E402
from ktstr.vm.machine import VmSpec  # noqa: E402
from ktstr.vm.pyroot import agent_tree  # noqa: E402

TOPO = "1n1l2c1t"


def guest_rates(secs: float) -> None:
    """In the guest: one worker of each I/O type for `secs`; JSON on stdout."""
    from ktstr.system.blockdev import find_scratch_disk
    from ktstr.work.io import IoConvoy, IoRandRead, IoSyncWrite
    from ktstr.work.sequence import Io, Sequence
    from ktstr.workload import WorkloadConfig, WorkloadHandle

    out: dict[str, Any] = {"disk": str(find_scratch_disk())}
    for name, work in (("IoSyncWrite", IoSyncWrite()), ("IoRandRead", IoRandRead()),
                       ("IoConvoy", IoConvoy()), ("Sequence(Io)", Sequence(Io(1.0)))):
        with WorkloadHandle.spawn(WorkloadConfig(workers=1, work=work), start=True) as h:
            time.sleep(secs)
            (r,) = h.stop_and_collect()
        wall = max(1, r.wall_time_ns) / 1e9
        out[name] = {"units_per_s": r.work_units / wall, "on_cpu": r.cpu_time_ns / 1e9 / wall,
                     "vcsw_per_s": r.voluntary_csw / wall, "notes": r.notes, "error": r.error}
    print(json.dumps(out))


def specs(kernel_spec: str | None) -> dict[str, VmSpec]:
    kernel = resolve_kernel(kernel_spec)
    after = vm_spec(kernel, Topology.parse(TOPO), 2048, choose_accel())
    modules = [m for m in kernel.vm_modules() if kmod.module_name(m) != "virtio_blk"]
    initrd = build_initramfs(modules, cache_root() / "initramfs",
                             agent_tree(sys.executable, cache_root() / "initramfs"))
    return {"before": replace(after, initrd=initrd, disk_mb=0), "after": after}


def run(spec: VmSpec, command: str, *, cold: bool) -> tuple[Any, dict[str, Any]]:
    req = ShellRequest(topology=TOPO, cwd=str(HERE.parent), command=command,
                       seed=random.getrandbits(63))
    # cold: neither restore nor save, so every cold boot is one
    with tempfile.TemporaryDirectory(prefix="ktstr-bench-disk-") as tmp:
        booted = boot(spec, Path(tmp), BOOT_BUDGET_S[spec.accel],
                      lambda: {"type": "go", "shell": replace(req, wall_time=time.time())
                               .to_dict()}, snapshots=not cold)
        # Not cold: restored, or booted and saved when the snapshot did not exist yet.
        if booted.mode != "cold" if cold else booted.mode != "restored" and not booted.snapshot:
            raise SystemExit(f"expected a {'cold' if cold else 'restored'} guest, got "
                             f"{booted.mode} ({booted.fallback})")
        try:
            while (msg := booted.machine.recv(600)) is not None:
                if msg["type"] in ("result", "eof"):
                    break
            booted.machine.shutdown()
        finally:
            booted.machine.kill()
    if msg is None or msg.get("exit_code") != 0:
        raise SystemExit(f"guest command failed: {msg}")
    return booted, msg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--kernel", default=None)
    ap.add_argument("--secs", type=float, default=3.0)
    ap.add_argument("--guest-rates", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.guest_rates:
        guest_rates(args.secs)
        return
    guests = specs(args.kernel)
    figures: dict[str, dict[str, list[float]]] = {g: {} for g in guests}
    rates: dict[str, list[dict[str, Any]]] = {g: [] for g in guests}
    rate_cmd = f"{sys.executable} {HERE / 'scratch_disk.py'} --guest-rates --secs {args.secs}"
    for spec in guests.values():
        run(spec, "true", cold=False)  # saves the snapshot if there is none yet
    for _ in range(args.runs):
        for name, spec in guests.items():
            booted, _ = run(spec, "true", cold=True)
            f = figures[name]
            f.setdefault("cold: qemu start -> hello (s)", []).append(booted.boot_s)
            f.setdefault("cold: guest uptime at hello (s)", []).append(
                float(booted.hello.get("uptime_s", 0.0)))
            booted, msg = run(spec, rate_cmd, cold=False)
            f.setdefault("restore: qemu start -> running (s)", []).append(booted.boot_s)
            rates[name].append(json.loads(msg["stdout"]))
    for name, f in figures.items():
        print(f"{name} ({'no disk, no virtio_blk' if name == 'before' else 'scratch disk'}):")
        for what, values in f.items():
            print(f"  {what:38s} median {statistics.median(values):6.2f}  "
                  f"(min {min(values):.2f}, max {max(values):.2f})")
        for kind in ("IoSyncWrite", "IoRandRead", "IoConvoy", "Sequence(Io)"):
            ups = [r[kind]["units_per_s"] for r in rates[name]]
            cpu = [r[kind]["on_cpu"] for r in rates[name]]
            notes = rates[name][-1][kind]["notes"]
            print(f"  {kind:14s} units/s median {statistics.median(ups):8.1f} "
                  f"(min {min(ups):.1f}, max {max(ups):.1f}), on CPU "
                  f"{statistics.median(cpu):.2f}; notes: {notes or 'none'}")


if __name__ == "__main__":
    main()
