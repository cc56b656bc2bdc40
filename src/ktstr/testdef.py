"""`@ktstr_test`: a scheduler test as data, validated when it is declared.

The decorator turns a function `(ctx) -> AssertResult | None` into a
`KtstrTest` carrying the resolved topology, durations, scheduler and the
test's `Assert` overrides. Bad values raise `ConfigError` at decoration time,
so a typo fails at collection, before any VM boots. The object stays callable
so pytest marks (`@pytest.mark.xfail`) can be stacked on it.

The gauntlet's topology constraints (`min_llcs`, `max_llcs`, `min_cpus`,
`max_cpus`, `min_numa_nodes`, `max_numa_nodes`, `requires_smt`) become the test's
`constraints`, over its scheduler's (ktstr.gauntlet.TopologyConstraints).

`performance_mode=True` pins each vCPU thread to a host CPU of its own, puts guest
memory on hugepages where the host has them and runs the vCPU threads SCHED_FIFO
under KVM (ktstr.vm.perfmode, docs/performance-mode.md); it must be a bool.

Not supported yet: the constraints `required_flags` and
`excluded_flags`, and the `min_numa_locality` check. They are part of the
attribute set, so a test may name them, but only with their default values: any
other value raises ConfigError rather than being accepted and ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ktstr.checks import Assert
from ktstr.errors import ConfigError
from ktstr.gauntlet import CONSTRAINT_FIELDS, TopologyConstraints, constraints_from
from ktstr.payloads import Payload
from ktstr.scheduler import Scheduler
from ktstr.topology import Topology
from ktstr.validators import is_int, seconds

TestBody = Callable[..., Any]

DEFAULT_WATCHDOG_S = 4.0
WATCHDOG_SLACK_S = 2.0

_FLAGS = "no preset carries flags yet"
#: Attributes whose feature does not exist yet: the values that mean "unset", which stay
#: accepted, and why any other is refused. The change that implements one removes it here.
NOT_SUPPORTED_YET: dict[str, tuple[tuple[object, ...], str]] = {
    "required_flags": ((None, (), []), _FLAGS),
    "excluded_flags": ((None, (), []), _FLAGS),
    "min_numa_locality": ((None,), "no check measures NUMA locality yet"),
}


def is_unset(value: object, unset: tuple[object, ...]) -> bool:
    """`value` is one of `unset` and of its type (0 is not False, () is not None)."""
    return any(value is u or (type(value) is type(u) and value == u) for u in unset)


def refuse_unsupported(attrs: dict[str, Any]) -> None:
    """ConfigError for the first attribute of NOT_SUPPORTED_YET set to another value than
    its default."""
    for name, (unset, why) in NOT_SUPPORTED_YET.items():
        if name in attrs and not is_unset(attrs[name], unset):
            raise ConfigError(f"{name}={attrs[name]!r} is not supported yet ({why}); "
                              "hint: leave it unset")


@dataclass(eq=False)  # not frozen: pytest stores marks on the object (`pytestmark`)
class KtstrTest:
    """A test as `@ktstr_test` declared it, validated; calling it calls the body."""

    fn: TestBody
    name: str
    topology: Topology
    duration_s: float = 2.0
    watchdog_timeout_s: float = 4.0
    watchdog_explicit: bool = False  # set by the test (else DEFAULT_WATCHDOG_S, derived)
    workers_per_cgroup: int = 2
    memory_mb: int = 2048
    scheduler: Scheduler = Scheduler.EEVDF
    staged_schedulers: tuple[Scheduler, ...] = ()  # what the body's ops may attach
    extra_sched_args: tuple[str, ...] = ()
    checks: Assert = field(default_factory=Assert)
    # The presets a gauntlet runs it on: its own constraints over its scheduler's.
    constraints: TopologyConstraints = field(default_factory=TopologyConstraints)
    payload: Payload | None = None  # the primary payload: run after the body if it did not
    workloads: tuple[Payload, ...] = ()  # more payloads the body runs with ctx.payload
    config: str | None = None
    performance_mode: bool = False  # pinned vCPUs, hugepages, FIFO (ktstr.vm.perfmode)
    auto_repro: bool = True
    timeout_s: float | None = None  # host-side deadline; None = derived from duration
    # Globals of the scheduler's .bss/.data written by the host before the body starts.
    scheduler_vars: dict[str, int | float | bool] = field(default_factory=dict)

    @property
    def may_attach_sched_ext(self) -> bool:
        """A sched_ext scheduler may run in its VM: its own, or one its body attaches."""
        return bool(self.staged_schedulers) or self.scheduler.spec.has_active_scheduling()

    def merged_checks(self, *, emulated: bool) -> Assert:
        """The checks the run is judged by: defaults (the emulation profile under TCG)
        -> the scheduler's -> the test's own, each level's set fields winning over the
        one before (Assert.merge). The guest judges
        its workers and the host its monitor samples with the same ones."""
        return Assert.default_checks(emulated=emulated).merge(self.scheduler.checks) \
            .merge(self.checks)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def payloads(self) -> tuple[Payload, ...]:
        """The primary payload (if any) and the workloads: what must exist before a boot."""
        return ((self.payload,) if self.payload is not None else ()) + self.workloads

    @property
    def __name__(self) -> str:  # lets pytest marks be applied to the test object
        return self.name


def ktstr_test(fn: TestBody | None = None, **attrs: Any) -> Any:
    """Register a scheduler test. `attrs`: the topology (`numa_nodes`, `llcs`, `cores`,
    `threads`), `duration_s`, `watchdog_timeout_s`, `workers_per_cgroup`, `memory_mb`,
    `timeout_s`, `scheduler`, `staged_schedulers`, `extra_sched_args`,
    `scheduler_vars`, `config`, `payload`, `workloads`, `auto_repro`,
    `performance_mode`, every `Assert` field by name, the gauntlet's constraints
    (`min_llcs`, `max_llcs`, `min_cpus`, `max_cpus`, `min_numa_nodes`, `max_numa_nodes`,
    `requires_smt`) and the attributes not supported yet (NOT_SUPPORTED_YET)."""
    if fn is not None:
        return _build(fn, attrs)
    return lambda f: _build(f, attrs)


def _build(fn: TestBody, attrs: dict[str, Any]) -> KtstrTest:
    if not callable(fn):
        raise ConfigError(f"@ktstr_test decorates a function, not {fn!r}")
    name = getattr(fn, "__name__", repr(fn))
    attrs = dict(attrs)
    check_fields = set(Assert.field_names())
    known = {"numa_nodes", "llcs", "cores", "threads", "duration_s", "watchdog_timeout_s",
             "workers_per_cgroup", "memory_mb", "scheduler", "staged_schedulers",
             "extra_sched_args", "payload",
             "workloads", "config", "performance_mode", "auto_repro", "timeout_s",
             "scheduler_vars",
             *CONSTRAINT_FIELDS, "required_flags", "excluded_flags", *check_fields}
    unknown = sorted(set(attrs) - known)
    if unknown:
        raise ConfigError(f"@ktstr_test on {name}: unknown attribute(s) {', '.join(unknown)}; "
                          f"hint: valid ones are {', '.join(sorted(known))}")
    try:
        refuse_unsupported(attrs)
        return _resolve(fn, name, attrs, check_fields)
    except ConfigError as e:
        raise ConfigError(f"@ktstr_test on {name}: {e}") from None


def inline_config(value: Any, scheduler: Scheduler) -> str | None:
    """The test's `config=` as the text the guest file gets (a dict becomes JSON), paired
    with the scheduler's `config_file_def` both ways: content needs a seam to go through,
    and a seam with no content would start the scheduler without the config it declares."""
    seam = scheduler.config_file_def
    if value is None:
        if seam is not None:
            raise ConfigError(f"scheduler {scheduler.name} takes its config inline "
                              f"(config_file_def={seam!r}) and the test gives none; "
                              "hint: config={...} (a dict is written as JSON) or a string")
        return None
    if seam is None:
        raise ConfigError(f"config= is given but scheduler {scheduler.name} has no "
                          "config_file_def to pass it through; hint: declare the scheduler "
                          "with config_file_def=('--config={file}', '/include-files/x.json')")
    if isinstance(value, dict):
        try:
            return json.dumps(value)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"config= dict is not JSON-serializable ({e}); hint: plain "
                              "dicts, lists, strings, numbers, booleans and None") from None
    if isinstance(value, str):
        return value
    raise ConfigError(f"config={value!r} is a {type(value).__name__}; hint: a dict (written "
                      "as JSON) or the file's text as a str")


def _resolve(fn: TestBody, name: str, attrs: dict[str, Any],
             check_fields: set[str]) -> KtstrTest:
    scheduler = attrs.pop("scheduler", Scheduler.EEVDF)
    if not isinstance(scheduler, Scheduler):
        raise ConfigError(f"scheduler={scheduler!r} is not a Scheduler; "
                          "hint: use declare_scheduler(...) or Scheduler.EEVDF")
    staged = _staged(scheduler, attrs.pop("staged_schedulers", ()))
    dims = ("numa_nodes", "llcs", "cores", "threads")
    topo = Topology(*(attrs.pop(d) if d in attrs else default
                      for d, default in zip(dims, scheduler.topology, strict=True)))
    duration = seconds(attrs.pop("duration_s", 2.0), "duration_s")
    explicit_watchdog = "watchdog_timeout_s" in attrs
    if explicit_watchdog:
        watchdog = seconds(attrs.pop("watchdog_timeout_s"), "watchdog_timeout_s")
    else:
        # 4 s by default, stretched for longer runs so that a test that only sets a
        # long duration_s is not invalid (the watchdog must outlast the workload).
        watchdog = max(DEFAULT_WATCHDOG_S, duration + WATCHDOG_SLACK_S)
    if watchdog < duration:
        raise ConfigError(f"watchdog_timeout_s={watchdog:g} is shorter than duration_s="
                          f"{duration:g}: the sched_ext watchdog would fire before the workload "
                          "ends; hint: watchdog_timeout_s >= duration_s + slack")
    workers = attrs.pop("workers_per_cgroup", 2)
    if not is_int(workers) or workers < 1:
        raise ConfigError(f"workers_per_cgroup={workers!r} must be an integer >= 1")
    memory = attrs.pop("memory_mb", 2048)
    if not is_int(memory) or memory < 256:
        raise ConfigError(f"memory_mb={memory!r} must be an integer >= 256")
    timeout = attrs.pop("timeout_s", None)
    payload, workloads = _payloads(attrs.pop("payload", None), attrs.pop("workloads", ()))
    config = inline_config(attrs.pop("config", None), scheduler)
    sched_vars = scheduler_vars(attrs.pop("scheduler_vars", {}), scheduler)
    checks = Assert(**{k: attrs.pop(k) for k in list(attrs) if k in check_fields})
    constraints = _constraints(attrs, scheduler)
    return KtstrTest(
        fn=fn, name=name, topology=topo, duration_s=duration, watchdog_timeout_s=watchdog,
        watchdog_explicit=explicit_watchdog,
        workers_per_cgroup=workers, memory_mb=memory, scheduler=scheduler,
        staged_schedulers=staged,
        extra_sched_args=tuple(attrs.pop("extra_sched_args", ())), checks=checks,
        constraints=constraints, payload=payload, workloads=workloads, config=config,
        performance_mode=_bool(attrs.pop("performance_mode", False), "performance_mode"),
        auto_repro=bool(attrs.pop("auto_repro", True)),
        timeout_s=None if timeout is None else seconds(timeout, "timeout_s"),
        scheduler_vars=sched_vars)


def _bool(value: Any, name: str) -> bool:
    """`value` when it is a bool; 0, 1 or "yes" are refused (a typo, not a choice)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name}={value!r} must be True or False")
    return value


def _constraints(attrs: dict[str, Any], scheduler: Scheduler) -> TopologyConstraints:
    """The test's constraints over its scheduler's, checked whole with the defaults:
    a min above a max, whoever set each, admits no preset and is refused."""
    own = constraints_from({k: attrs.pop(k) for k in list(attrs) if k in CONSTRAINT_FIELDS})
    for k in ("required_flags", "excluded_flags"):
        attrs.pop(k, None)  # only their unset values got past refuse_unsupported
    merged = own.over(scheduler.constraints or TopologyConstraints())
    merged.resolved()  # ConfigError when, with the defaults, no preset can fit
    return merged


def scheduler_vars(value: Any, scheduler: Scheduler) -> dict[str, int | float | bool]:
    """`scheduler_vars`: globals to write into the test's own sched_ext scheduler before
    the workload starts (a way to tune a scheduler without rebuilding it)."""
    if not isinstance(value, dict):
        raise ConfigError(f"scheduler_vars={value!r} is not a dict; hint: "
                          "scheduler_vars={'slice_ns': 5000000}")
    if value and not scheduler.spec.has_active_scheduling():
        raise ConfigError(f"scheduler_vars={value!r} but the test runs under "
                          f"{scheduler.name}, which has no variables to write; hint: set "
                          "scheduler= to the sched_ext scheduler whose globals they are")
    for name, v in value.items():
        if not isinstance(name, str) or not all(p.isidentifier() for p in name.split(".")):
            raise ConfigError(f"scheduler_vars: {name!r} is not a global's name; hint: the "
                              "name of a .bss/.data variable, e.g. 'slice_ns', or a member "
                              "of one, e.g. 'qa.nr_dispatched'")
        if not isinstance(v, int | float | bool):
            raise ConfigError(f"scheduler_vars: {name}={v!r} is a {type(v).__name__}; hint: "
                              "an int, float or bool")
    return dict(value)


def _staged(own: Scheduler, value: Any) -> tuple[Scheduler, ...]:
    """`staged_schedulers`: the sched_ext schedulers the body's ops may attach, by distinct
    names; the runner finds each one's binary before the boot, so a missing one fails
    before any VM starts."""
    if isinstance(value, Scheduler) or not isinstance(value, list | tuple):
        raise ConfigError(f"staged_schedulers={value!r} is not a list of schedulers; "
                          "hint: staged_schedulers=[MY_SCHED]")
    by_name: dict[str, Scheduler] = {own.name: own}
    for s in value:
        if not isinstance(s, Scheduler):
            raise ConfigError(f"staged_schedulers: {s!r} is not a Scheduler; "
                              "hint: use declare_scheduler(...)")
        if not s.spec.has_active_scheduling():
            raise ConfigError(f"staged_schedulers: {s.name} is EEVDF, which is not attached "
                              "but left to; hint: Op.detach_scheduler() runs the rest under "
                              "EEVDF")
        if by_name.get(s.name, s) != s:
            raise ConfigError(f"staged_schedulers: two different schedulers are named "
                              f"{s.name!r}; hint: give each its own name")
        by_name[s.name] = s
    return tuple(value)


def _payloads(payload: Any, workloads: Any) -> tuple[Payload | None, tuple[Payload, ...]]:
    """Check the payload slots: Payload values with distinct names (binaries are looked
    up by the runner, before a boot, so a test collects on a machine without them)."""
    if payload is not None and not isinstance(payload, Payload):
        raise ConfigError(f"payload={payload!r} is not a Payload; hint: use Payload.binary(...) "
                          "or ktstr.payloads (a scheduler goes in scheduler=)")
    if isinstance(workloads, Payload):
        workloads = (workloads,)
    workloads = tuple(workloads)
    for w in workloads:
        if not isinstance(w, Payload):
            raise ConfigError(f"workloads: {w!r} is not a Payload; hint: a list of "
                              "Payload.binary(...) values")
    names = [p.name for p in ((payload,) if payload is not None else ()) + workloads]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"payload {dup[0]!r} is declared twice in payload=/workloads=; "
                          "hint: give each Payload its own name")
    return payload, workloads
