"""From a test's schedulers to the guest's orders for them, resolved before any boot.

Seed 003's merge order: the binary (found now: a missing one fails the test
before a VM starts), `--config FILE` for a `config_file` or the substituted
template of a `config_file_def` (the test's inline `config=` travels in the
orders, written to the declared guest path before the start), the scheduler's
`sched_args`, `--cell-parent-cgroup PATH` for a `cgroup_parent`, then the
test's `extra_sched_args` (for the test's own scheduler only: they were written
for it). Sysctls travel with the orders (applied in the guest before the
start); kargs go on the guest kernel's command line. Host paths are guest
paths (the guest sees the host root), so the binary and the config file are
named by their host paths.

A test's `staged_schedulers` (those its steps attach or swap in mid-run) are
resolved here too, for the seed's staged-binary rule: a scheduler the body
will ask for must be found, and the VM set up for scheduler switches, before
it boots.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from ktstr.errors import ConfigError
from ktstr.guest.schedctl import SchedulerOrder
from ktstr.scheduler import Scheduler
from ktstr.testdef import KtstrTest
from ktstr.vm.kernel import Kernel
from ktstr.vm.sched.cache import find_scheduler_binary

#: Seconds a scheduler may take from its start to `state=enabled`: libbpf loads and the
#: verifier runs under emulation, several seconds for the kernel's examples.
ATTACH_TIMEOUT_S = {"kvm": 15.0, "tcg": 60.0}


def scheduler_orders(test: KtstrTest, kernel: Kernel,
                     accel: str) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
    """The `TestRequest.scheduler` for `test` (None under EEVDF) and its
    `staged_schedulers`: every scheduler the body may attach, by name, the test's own
    one included (so that it can be attached again after a detach). ConfigError when
    one cannot be found or configured."""
    staged = {s.name: order_for(s, kernel, accel, (), test.watchdog_timeout_s, test.config)
              for s in test.staged_schedulers}
    own = None
    if test.scheduler.spec.has_active_scheduling():
        own = order_for(test.scheduler, kernel, accel, test.extra_sched_args,
                        test.watchdog_timeout_s, test.config)
        staged[test.scheduler.name] = own
    return own, staged


def order_for(sched: Scheduler, kernel: Kernel, accel: str, extra_args: tuple[str, ...],
              watchdog_timeout_s: float | None, inline_config: str | None) -> dict[str, Any]:
    """The guest's orders to run `sched` (not EEVDF), as a dict for the wire;
    `inline_config` is the test's `config=`, for a scheduler with a `config_file_def`."""
    spec = sched.spec
    argv = [] if spec.kind == "kernel_builtin" else [str(find_scheduler_binary(spec, kernel))]
    if sched.config_file is not None:
        config = Path(sched.config_file).resolve()
        if not config.is_file():
            raise ConfigError(f"scheduler {sched.name}: config_file {sched.config_file} does "
                              "not exist; hint: give a path relative to the working directory "
                              "or an absolute one")
        argv += ["--config", str(config)]
    argv += sched.config_args(inline_config)
    files = ([(sched.config_file_def[1], inline_config)]
             if sched.config_file_def is not None and inline_config is not None else [])
    argv += list(sched.sched_args)
    if sched.cgroup_parent is not None:
        argv += ["--cell-parent-cgroup", sched.cgroup_parent]
    argv += list(extra_args)
    if spec.kind == "kernel_builtin" and len(argv) > 0:
        raise ConfigError(f"scheduler {sched.name} is built into the kernel: it takes no "
                          f"arguments ({argv}); hint: put them in its enable commands")
    order = SchedulerOrder(name=sched.name, argv=argv, enable=list(spec.enable),
                           disable=list(spec.disable), sysctls=list(sched.sysctls.items()),
                           files=files,
                           attach_timeout_s=ATTACH_TIMEOUT_S[accel],
                           watchdog_timeout_s=watchdog_timeout_s)
    return asdict(order)
