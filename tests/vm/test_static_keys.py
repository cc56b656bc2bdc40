"""The static keys a test could flip are on from boot and stay on, read from the host.

A flip patches kernel text through int3 breakpoints, which qemu 7.2's multi-threaded
TCG races (ktstr.vm.accel). Schedstats and delay accounting are on from the kernel
command line (ktstr.vm.machine.STATIC_KEYS_ON); the cpuset keys are held by a cgroup
the guest's init makes before hello (ktstr.guest.init.KEYS_CGROUP). The host reads
each key's count (`struct static_key.enabled`, the first word) from guest RAM while a
multi-threaded guest makes and removes a cpuset cgroup the way a test's cgroups come
and go: the count rises with it and falls back, but never to 0.
"""

from __future__ import annotations

import pytest

from ktstr.monitor.guestkernel import GuestKernel
from ktstr.monitor.guestmem import GuestMemory
from ktstr.vm.kernel import Kernel, resolve_kernel

from .guestvm import guest, kernel_symbol, until

SWAPPINESS = "/proc/sys/vm/swappiness"
PROBE = "/sys/fs/cgroup/kt-probe"
HELD = ("cpusets_enabled_key", "sched_schedstats", "delayacct_key")


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return resolve_kernel(None)


def _wait_swappiness(value: int) -> str:
    return f"until [ $(cat {SWAPPINESS}) = {value} ]; do sleep 0.1; done"


def test_keys_a_test_could_flip_are_held_on_from_boot(kernel):
    # The guest makes its cgroup when the host sets swappiness to 77 and removes it at
    # 78, so that each step follows a host read, whatever the emulation's speed.
    cmd = (f"{_wait_swappiness(77)}; mkdir {PROBE}; {_wait_swappiness(78)}; rmdir {PROBE}; "
           "echo 79 > " + SWAPPINESS + "; sleep 600")
    with guest(kernel, "1n1l2c1t", cmd, bzimage=False) as m:
        k = GuestKernel.open(GuestMemory.from_fds(m.memory_fds), 2)

        def word(symbol: str) -> int:
            return k.aspace.u32(kernel_symbol(k, symbol))

        def signal(value: int) -> None:
            k.aspace.write(kernel_symbol(k, "vm_swappiness"), value.to_bytes(4, "little"))

        held = {key: word(key) for key in HELD}
        assert all(n >= 1 for n in held.values()), f"off before any test cgroup: {held}"
        base = held["cpusets_enabled_key"]
        signal(77)
        until("the probe cgroup counted", lambda: word("cpusets_enabled_key") == base + 1)
        signal(78)
        until("the probe cgroup removed", lambda: word("vm_swappiness") == 79)
        # rmdir returns before the kernel takes the cgroup's cpuset offline (an RCU
        # grace period and a work item later): wait for the count to come back down.
        until("the probe cgroup's cpuset offline",
              lambda: word("cpusets_enabled_key") == base,
              state=lambda: f"(count {word('cpusets_enabled_key')})")
        after = {key: word(key) for key in HELD}
        assert after == held, f"before the probe cgroup {held}, after it {after}"
