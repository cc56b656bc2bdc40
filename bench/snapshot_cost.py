#!/usr/bin/env python3
"""Cost of one capture of the attached scheduler's BPF state (ktstr.monitor.bpfstate).

    .venv/bin/python bench/snapshot_cost.py [--cpus 4,16] [--rounds 10] [--sched scx_qmap]

For each vCPU count, boots a guest (PVH) running the scheduler with a sleeper on every
CPU, waits until it is attached, then times `scheduler_state()` with the guest stopped
(QMP stop ... cont, as a snapshot does): the read alone and the whole freeze (stop +
read + cont), median and max over the rounds, and the first read (which parses the
program's BTF). Also prints the time to derive the BPF
layout when it is not cached, and the size of what one capture returns.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.vm.guestvm import guest, sleepers  # noqa: E402

from ktstr.monitor import bpfstate  # noqa: E402
from ktstr.monitor.guestkernel import GuestKernel  # noqa: E402
from ktstr.monitor.guestmem import GuestMemory  # noqa: E402
from ktstr.vm.kernel import resolve_kernel  # noqa: E402
from ktstr.vm.sched.cache import discover  # noqa: E402

TOPOLOGIES = {2: "1n1l2c1t", 4: "1n2l2c1t", 8: "1n2l4c1t", 16: "1n4l4c1t"}


def measure(cpus: int, rounds: int, sched: str) -> None:
    kernel = resolve_kernel(None)
    binary = discover(sched, kernel)
    if binary is None:
        sys.exit(f"{sched} is not built for {kernel.version} (ktstr sched build)")
    with guest(kernel, TOPOLOGIES[cpus], f"{sleepers(cpus)} {binary} >/dev/null 2>&1 & "
               "sleep 900", bzimage=False, tcg_threads="single") as machine:
        k = GuestKernel.open(GuestMemory.from_fds(machine.memory_fds), cpus)
        bpfstate._LAYOUTS.clear()
        t = time.perf_counter()
        bpfstate.bpf_layout(k)
        layout_s = time.perf_counter() - t
        deadline = time.monotonic() + 180
        while bpfstate.scheduler_state(k)["scheduler"] is None:
            if time.monotonic() > deadline:
                sys.exit(f"{sched} did not attach within 180 s")
            time.sleep(0.5)
        time.sleep(1.0)
        bpfstate._PROGRAM_BTFS.clear()  # the first capture of a scheduler parses its BTF
        machine.qmp("stop")
        t = time.perf_counter()
        bpfstate.scheduler_state(k)
        cold_ms = (time.perf_counter() - t) * 1e3
        machine.qmp("cont")
        reads, freezes = [], []
        state: dict = {}
        for _ in range(rounds):
            t0 = time.perf_counter()
            machine.qmp("stop")
            t1 = time.perf_counter()
            state = bpfstate.scheduler_state(k)
            t2 = time.perf_counter()
            machine.qmp("cont")
            t3 = time.perf_counter()
            reads.append((t2 - t1) * 1e3)
            freezes.append((t3 - t0) * 1e3)
            time.sleep(0.2)
        size = len(json.dumps(state))
        print(f"{sched} {cpus:3d} vCPUs: read {statistics.median(reads):6.1f} ms "
              f"(max {max(reads):.1f}, first {cold_ms:.1f}); "
              f"frozen {statistics.median(freezes):6.1f} ms "
              f"(max {max(freezes):.1f}); {len(state['maps'])} maps, {len(state['vars'])} "
              f"vars, {size / 1024:.0f} KiB of JSON; BPF layout (cached file) "
              f"{layout_s * 1e3:.0f} ms", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpus", default="4,16")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--sched", default="scx_qmap")
    args = p.parse_args()
    for n in (int(c) for c in args.cpus.split(",")):
        measure(n, args.rounds, args.sched)


if __name__ == "__main__":
    main()
