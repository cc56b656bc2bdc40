"""The schedulers of a test, resolved on the host before any boot.

The host finds the binary of each scheduler the test may start (a missing one
fails the test before a VM starts) and builds every order with the guest's own
rule (ktstr.guest.schedorder), so that a `config_file` that does not exist or
arguments to a kernel built-in fail here too. What travels to the guest is the
binaries, by scheduler name, and the attach timeout; the guest rebuilds the
orders from its own import of the test.
"""

from __future__ import annotations

from dataclasses import dataclass

from ktstr.guest.schedorder import orders_for_test
from ktstr.protocol import SchedulerOrder
from ktstr.scheduler import Scheduler
from ktstr.testdef import KtstrTest
from ktstr.vm.kernel import Kernel
from ktstr.vm.sched.cache import find_scheduler_binary

#: Seconds a scheduler may take from its start to `state=enabled`: libbpf loads and the
#: verifier runs under emulation, several seconds for the kernel's examples.
ATTACH_TIMEOUT_S = {"kvm": 15.0, "tcg": 60.0}


@dataclass(frozen=True, slots=True)
class ResolvedSchedulers:
    """A test's schedulers as the host resolved them for one run."""

    binaries: dict[str, str]  # by scheduler name; none for a kernel built-in
    own: SchedulerOrder | None  # the test's own scheduler; None under EEVDF
    staged: dict[str, SchedulerOrder]  # every one the body may attach, own included


def resolve_schedulers(test: KtstrTest, kernel: Kernel, accel: str) -> ResolvedSchedulers:
    """Find every binary and build every order; ConfigError when one cannot be found or
    configured."""
    binaries: dict[str, str] = {}

    def binary_of(sched: Scheduler) -> str:
        binaries[sched.name] = str(find_scheduler_binary(sched.spec, kernel))
        return binaries[sched.name]

    own, staged = orders_for_test(test, binary_of, ATTACH_TIMEOUT_S[accel])
    return ResolvedSchedulers(binaries, own, staged)
