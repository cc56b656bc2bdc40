"""From a test's schedulers to the orders that start them: one rule for host and guest.

The host builds every order before the boot, to refuse a test it cannot run
(a missing binary, a missing `config_file`, arguments to a kernel built-in)
with a ConfigError before any VM starts; the guest builds the same orders
again from its own import of the test, with the binaries the host found. Both
call `orders_for_test`, so they cannot disagree.

The argument merge order: the binary, `--config FILE` for a `config_file` or
the substituted template of a `config_file_def` (the test's inline `config=` is
written to the declared guest path before the start), the scheduler's
`sched_args`, `--cell-parent-cgroup PATH` for a `cgroup_parent`, then the
test's `extra_sched_args` (for the test's own scheduler only: they were written
for it). Sysctls travel with the order (applied in the guest before the
start); kargs go on the guest kernel's command line. Host paths are guest paths
(the guest sees the host root), so the binary and the config file are named by
their host paths.

A test's `staged_schedulers` (those its steps attach or swap in mid-run) get
orders too: a scheduler the body will ask for must be found before the boot.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ktstr.errors import ConfigError
from ktstr.protocol import SchedulerOrder
from ktstr.scheduler import Scheduler
from ktstr.testdef import KtstrTest

#: The binary of a scheduler with one (not EEVDF, not a kernel built-in), as a path.
BinaryOf = Callable[[Scheduler], str]


def orders_for_test(test: KtstrTest, binary_of: BinaryOf, attach_timeout_s: float,
                ) -> tuple[SchedulerOrder | None, dict[str, SchedulerOrder]]:
    """The order for `test`'s own scheduler (None under EEVDF) and every scheduler the
    body may attach, by name, the own one included (so that it can be attached again
    after a detach). ConfigError when one cannot be found or configured."""
    staged = {s.name: scheduler_order(s, binary_of, attach_timeout_s, (), test.config)
              for s in test.staged_schedulers}
    own = None
    if test.scheduler.spec.has_active_scheduling():
        own = scheduler_order(test.scheduler, binary_of, attach_timeout_s,
                              test.extra_sched_args, test.config)
        staged[test.scheduler.name] = own
    return own, staged


def scheduler_order(sched: Scheduler, binary_of: BinaryOf, attach_timeout_s: float,
                    extra_args: tuple[str, ...], inline_config: str | None) -> SchedulerOrder:
    """The order to run `sched` (not EEVDF); `inline_config` is the test's `config=`,
    for a scheduler with a `config_file_def`."""
    spec = sched.spec
    argv = [] if spec.kind == "kernel_builtin" else [binary_of(sched)]
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
    return SchedulerOrder(name=sched.name, argv=argv, enable=list(spec.enable),
                          disable=list(spec.disable), sysctls=list(sched.sysctls.items()),
                          files=files, attach_timeout_s=attach_timeout_s)
