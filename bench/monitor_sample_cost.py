#!/usr/bin/env python3
"""Cost of one host-side monitor sample (ktstr.monitor.rqreader) by guest size.

    .venv/bin/python bench/monitor_sample_cost.py [--cpus 2,4,16] [--samples 500]

For each vCPU count, boots a guest (PVH, the default boot) whose CPUs each run a
task waking every 50 ms plus one spinner, opens its kernel from the host and times
`RqReader.sample()`: the median of 5 rounds of N samples, with the range. Also prints
the time to open the kernel (vmcoreinfo scan + cached layout + per-CPU offsets) and
to derive the layout when it is not cached (kallsyms decode + BTF parse).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.vm.guestvm import SPIN, guest, sample_cost_us, sleepers, wait_for  # noqa: E402

from ktstr.monitor.guestkernel import GuestKernel  # noqa: E402
from ktstr.monitor.guestmem import GuestMemory  # noqa: E402
from ktstr.monitor.layout import derive_layout  # noqa: E402
from ktstr.monitor.rqreader import RqReader  # noqa: E402
from ktstr.vm.kernel import resolve_kernel  # noqa: E402

TOPOLOGIES = {2: "1n1l2c1t", 4: "1n2l2c1t", 8: "1n2l4c1t", 16: "1n4l4c1t"}


def measure(cpus: int, samples: int) -> None:
    kernel = resolve_kernel(None)
    with guest(kernel, TOPOLOGIES[cpus], f"{SPIN} {sleepers(cpus)} sleep 600",
               bzimage=False) as machine:
        mem = GuestMemory.from_fds(machine.memory_fds)
        t = time.perf_counter()
        k = GuestKernel.open(mem, cpus)
        opened = time.perf_counter() - t
        t = time.perf_counter()
        derive_layout(k.aspace, k.info)
        derived = time.perf_counter() - t
        reader = RqReader(k)
        wait_for("the spinner", reader.sample, lambda s: s.cpus[1].curr_comm == "gm-spin")
        rounds = [sample_cost_us(reader, samples) for _ in range(5)]
        print(f"{cpus:3d} vCPUs: one sample {statistics.median(rounds):6.1f} us "
              f"(range {min(rounds):.1f}-{max(rounds):.1f}); open {opened * 1e3:.0f} ms, "
              f"uncached layout {derived:.2f} s", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpus", default="2,4,16")
    p.add_argument("--samples", type=int, default=500)
    args = p.parse_args()
    for n in (int(c) for c in args.cpus.split(",")):
        measure(n, args.samples)


if __name__ == "__main__":
    main()
