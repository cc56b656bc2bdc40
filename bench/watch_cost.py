#!/usr/bin/env python3
"""What a write watchpoint costs: per hit, and to the guest's work while slot 0 is armed.

    .venv/bin/python bench/watch_cost.py [--rounds 3] [--writes 100] [--forks 300]

One 2-vCPU guest (TCG, scx_simple attached) runs loops on the host's signal (the host
writes `vm_swappiness` through guest RAM; the guest sets it to 31 while a loop runs, so
the host times each loop in its own wall clock by polling that word every millisecond):

- per hit: N writes of /proc/sys/kernel/sched_rr_timeslice_ms, with and without a watch
  on `sysctl_sched_rr_timeslice`; (time with - time without) / N is the whole cost of a
  hit as the guest sees it (all vCPUs stopped, the stop reply, the handler, `c`). The
  host's own handling (stop reply in -> `c` acknowledged) is printed too.
- slot 0: a fork+exec loop (every fork, wakeup and exit goes through scx_simple, whose
  struct scx_sched shares a page with exit_kind) with slot 0 armed and not. Under TCG
  every access to a page holding a watchpoint takes the slow path.

Rounds alternate the two settings so host noise falls on both.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.vm.guestvm import guest, kernel_symbol  # noqa: E402

from ktstr.monitor.guestkernel import GuestKernel  # noqa: E402
from ktstr.monitor.guestmem import GuestMemory  # noqa: E402
from ktstr.monitor.watch import WatchSet  # noqa: E402
from ktstr.vm.kernel import resolve_kernel  # noqa: E402
from ktstr.vm.sched.cache import discover  # noqa: E402

SW = "/proc/sys/vm/swappiness"
RR = "/proc/sys/kernel/sched_rr_timeslice_ms"
RUNNING = 31


def guest_loops(writes: int, forks: int, simple: Path) -> str:
    def loop(n: int, body: str) -> str:
        return (f"echo {RUNNING} > {SW}; i=0; while [ $i -lt {n} ]; do {body}; i=$((i+1)); "
                f"done; echo 32 > {SW}")
    return (f"{simple} >/dev/null 2>&1 & echo 10 > {SW}; "
            f"while :; do case $(cat {SW}) in "
            f"77) {loop(writes, f'echo 5 > {RR}')}; echo 10 > {SW};; "
            f"78) {loop(forks, '/bin/true')}; echo 10 > {SW};; "
            f"esac; sleep 0.05; done")


class Timer:
    def __init__(self, k: GuestKernel) -> None:
        self.k = k
        self.addr = kernel_symbol(k, "vm_swappiness")

    def run(self, signal: int, timeout: float = 600.0) -> float:
        """Start loop `signal`; its duration in host seconds."""
        deadline = time.monotonic() + timeout
        while self.k.aspace.u32(self.addr) != 10:  # the guest is done with the last loop
            if time.monotonic() > deadline:
                raise SystemExit("the guest never finished its last loop")
            time.sleep(0.001)
        self.k.aspace.write(self.addr, signal.to_bytes(4, "little"))
        while self.k.aspace.u32(self.addr) != RUNNING:
            if time.monotonic() > deadline:
                raise SystemExit(f"the guest never started loop {signal}")
            time.sleep(0.001)
        t0 = time.monotonic()
        while self.k.aspace.u32(self.addr) == RUNNING:
            if time.monotonic() > deadline:
                raise SystemExit(f"loop {signal} never ended")
            time.sleep(0.001)
        return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--writes", type=int, default=100)
    ap.add_argument("--forks", type=int, default=300)
    args = ap.parse_args()
    kernel = resolve_kernel(None)
    simple = discover("scx_simple", kernel)
    if simple is None:
        raise SystemExit("scx_simple is not built (ktstr sched build)")
    with guest(kernel, "1n1l2c1t", guest_loops(args.writes, args.forks, simple),
               bzimage=True, tcg_threads="single") as m:
        k = GuestKernel.open(GuestMemory.from_fds(m.memory_fds), 2)
        timer = Timer(k)
        while not k.scx_root():
            time.sleep(0.1)
        stub = m.gdbstub()
        plain: list[float] = []
        watched: list[float] = []
        handling: list[float] = []
        rate_off: list[float] = []
        rate_on: list[float] = []
        for r in range(args.rounds):
            plain.append(timer.run(77))
            with WatchSet(k, stub, follow_scheduler=False) as ws:
                ws.add("sysctl_sched_rr_timeslice")
                watched.append(timer.run(77))
                hits = ws.wait_hits(args.writes, 30.0)
            if len(hits) != args.writes:
                print(f"  warning: {len(hits)} hits for {args.writes} writes")
            handling += [h.stopped_ms for h in hits]
            per_hit = (watched[-1] - plain[-1]) / args.writes * 1000.0
            rate_off.append(args.forks / timer.run(78))
            with WatchSet(k, stub, follow_scheduler=False) as ws:
                ws.arm_exit_kind(k.scx_root())
                assert ws.slots[0] is not None
                rate_on.append(args.forks / timer.run(78))
            print(f"round {r + 1}: {args.writes} sysctl writes {plain[-1]:.2f} s plain, "
                  f"{watched[-1]:.2f} s watched -> {per_hit:.1f} ms per hit; fork+exec "
                  f"{rate_off[-1]:.1f}/s without slot 0, {rate_on[-1]:.1f}/s with", flush=True)
    per = [(w - p) / args.writes * 1000.0 for w, p in zip(watched, plain, strict=True)]
    print(f"cost per hit (guest-visible, host wall): median {statistics.median(per):.1f} ms, "
          f"range {min(per):.1f}-{max(per):.1f}")
    print(f"host handling per hit (stop reply -> c acked): median "
          f"{statistics.median(handling):.2f} ms, max {max(handling):.2f} ms")
    off, on = statistics.median(rate_off), statistics.median(rate_on)
    print(f"fork+exec under scx_simple: {off:.1f}/s without slot 0, {on:.1f}/s with "
          f"({(on / off - 1) * 100:+.1f}%); spread without {min(rate_off):.1f}-"
          f"{max(rate_off):.1f}, with {min(rate_on):.1f}-{max(rate_on):.1f}")


if __name__ == "__main__":
    main()
