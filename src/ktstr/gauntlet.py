"""The gauntlet: the machine shapes a test runs on besides its own, and which it admits.

`PRESETS` maps each preset's name to its topology string (`{numa}n{llcs}l{cores}c{threads}t`,
LLCs counted for the whole machine): 24 x86 shapes from one LLC of 4 CPUs to 14 LLCs of
252. `TopologyConstraints` says which shapes a test admits (`min_llcs`, `max_llcs`,
`min_cpus`, `max_cpus`, `min_numa_nodes`, `max_numa_nodes`, `requires_smt`); a field left
None inherits (a test's own over its scheduler's, the scheduler's over `DEFAULTS`).
`variants` splits the presets for one test into those that run and those left out
because the host cannot run them (`cpu_ceiling`): docs/gauntlet.md says how the
emulation ceiling was measured.

A definition: it imports only the topology, the shared validators and the errors, so
scheduler definitions and tests can both name `TopologyConstraints`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from ktstr.errors import ConfigError
from ktstr.topology import Topology
from ktstr.validators import is_int

#: name -> topology string, in the order a gauntlet runs them.
PRESETS: dict[str, str] = {
    "tiny-1llc": "1n1l4c1t",
    "tiny-2llc": "1n2l2c1t",
    "odd-3llc": "1n3l3c1t",
    "odd-5llc": "1n5l3c1t",
    "odd-7llc": "1n7l2c1t",
    "smt-2llc": "1n2l2c2t",
    "smt-3llc": "1n3l2c2t",
    "medium-4llc": "1n4l4c2t",
    "medium-8llc": "1n8l4c2t",
    "large-4llc": "1n4l16c2t",
    "large-8llc": "1n8l8c2t",
    "near-max-llc": "1n15l8c2t",
    "max-cpu": "1n14l9c2t",
    "medium-4llc-nosmt": "1n4l8c1t",
    "medium-8llc-nosmt": "1n8l8c1t",
    "large-4llc-nosmt": "1n4l32c1t",
    "large-8llc-nosmt": "1n8l16c1t",
    "near-max-llc-nosmt": "1n15l16c1t",
    "max-cpu-nosmt": "1n14l18c1t",
    "numa2-4llc": "2n4l4c1t",
    "numa2-8llc": "2n8l8c2t",
    "numa2-8llc-nosmt": "2n8l16c1t",
    "numa4-8llc": "4n8l4c1t",
    "numa4-12llc": "4n12l8c2t",
}

#: Guest memory per vCPU and the least a preset's VM gets (MiB).
MIB_PER_CPU = 64
MIN_MEMORY_MB = 256

#: The default CPU ceiling under emulation (TCG): the largest guest whose cold boot and
#: run stay affordable on a small host (measured: docs/gauntlet.md). Under KVM the
#: ceiling is the host's CPU count.
TCG_MAX_CPUS = 16


def preset_topology(name: str) -> Topology:
    """The topology of the preset `name`; ConfigError naming it when there is none."""
    try:
        return Topology.parse(PRESETS[name])
    except KeyError:
        raise ConfigError(f"no gauntlet preset is named {name!r}; hint: one of "
                          f"{', '.join(PRESETS)}") from None


def memory_mb(topology: Topology, test_memory_mb: int) -> int:
    """A preset's guest memory: max(cpus x 64 MiB, 256 MiB, the test's memory_mb)."""
    return max(topology.cpus * MIB_PER_CPU, MIN_MEMORY_MB, test_memory_mb)


@dataclass(frozen=True, slots=True)
class TopologyConstraints:
    """Which presets a test admits; None: inherited (see `over`), else `DEFAULTS`."""

    min_llcs: int | None = None
    max_llcs: int | None = None
    min_cpus: int | None = None
    max_cpus: int | None = None
    min_numa_nodes: int | None = None
    max_numa_nodes: int | None = None
    requires_smt: bool | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name == "requires_smt":
                if not isinstance(value, bool):
                    raise ConfigError(f"requires_smt={value!r} is not a bool; hint: "
                                      "requires_smt=True admits only presets with SMT")
            elif not is_int(value) or value < 1:
                raise ConfigError(f"{f.name}={value!r} is not a positive integer; hint: "
                                  f"e.g. {f.name}=2")
        for lo, hi in _BOUNDS:
            low, high = getattr(self, lo), getattr(self, hi)
            if low is not None and high is not None and low > high:
                raise ConfigError(f"{lo}={low} is above {hi}={high}: no preset can fit; "
                                  f"hint: {lo} <= {hi}")

    def over(self, base: TopologyConstraints) -> TopologyConstraints:
        """These constraints, each unset field taken from `base` (the caller's own win).
        ConfigError when the two together admit nothing (a min above the other's max)."""
        return replace(base, **self.given())  # type: ignore[arg-type]  # fields by name

    def resolved(self) -> TopologyConstraints:
        """Every field set: the unset ones take `DEFAULTS`."""
        return self.over(DEFAULTS)

    def admits(self, topology: Topology) -> bool:
        """The topology fits these constraints (unset fields as `DEFAULTS`)."""
        c = self.resolved().given()  # every field, by name
        return (c["min_llcs"] <= topology.llcs <= c["max_llcs"]
                and c["min_cpus"] <= topology.cpus <= c["max_cpus"]
                and c["min_numa_nodes"] <= topology.numa_nodes <= c["max_numa_nodes"]
                and (not c["requires_smt"] or topology.threads > 1))

    def given(self) -> dict[str, int | bool]:
        """The fields that are set, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}


_BOUNDS = (("min_llcs", "max_llcs"), ("min_cpus", "max_cpus"),
           ("min_numa_nodes", "max_numa_nodes"))

#: What a test admits when neither it nor its scheduler says otherwise: one NUMA node,
#: up to 12 LLCs and 192 CPUs, with or without SMT.
DEFAULTS = TopologyConstraints(min_llcs=1, max_llcs=12, min_cpus=1, max_cpus=192,
                               min_numa_nodes=1, max_numa_nodes=1, requires_smt=False)

#: The constraint fields, as @ktstr_test attributes of the same names.
CONSTRAINT_FIELDS = tuple(f.name for f in fields(TopologyConstraints))


def constraints_from(attrs: dict[str, object]) -> TopologyConstraints:
    """The constraints among a test's attributes (None values are unset)."""
    return TopologyConstraints(**{k: v for k, v in attrs.items()  # type: ignore[arg-type]
                                  if k in CONSTRAINT_FIELDS})


@dataclass(frozen=True, slots=True)
class Ceiling:
    """The most vCPUs a gauntlet VM may have on this host, and where the number comes from
    (`--max-cpus 4`, `the emulation default --max-cpus 16`, `the host's 64 CPUs under
    KVM`)."""

    max_cpus: int
    source: str


def cpu_ceiling(given: int | None, accel: str, host_cpus: int) -> Ceiling:
    """`--max-cpus` when given, else the host's CPU count under KVM, else TCG_MAX_CPUS."""
    if given is not None:
        if not is_int(given) or given < 1:
            raise ConfigError(f"--max-cpus {given!r} is not a positive integer; "
                              "hint: e.g. --max-cpus 4")
        return Ceiling(given, f"--max-cpus {given}")
    if accel == "kvm":
        return Ceiling(host_cpus, f"the host's {host_cpus} CPUs under KVM")
    return Ceiling(TCG_MAX_CPUS, f"the emulation default --max-cpus {TCG_MAX_CPUS}")


def performance_ceiling(ceiling: Ceiling, host_cpus: int, one_thread: bool) -> Ceiling:
    """The ceiling of a `performance_mode` test: each vCPU thread needs a host CPU of
    its own (ktstr.vm.perfmode), so unless every vCPU runs on one thread (TCG where a
    sched_ext scheduler may load) a preset with more vCPUs than the host has CPUs is
    left out, not collected to be refused when it runs."""
    if one_thread or host_cpus >= ceiling.max_cpus:
        return ceiling
    return Ceiling(host_cpus, f"performance_mode's host CPU per vCPU thread (this host "
                   f"has {host_cpus})")


@dataclass(frozen=True, slots=True)
class Variant:
    """One preset for one test: its name, topology and guest memory."""

    preset: str
    topology: Topology
    memory_mb: int

    @property
    def suffix(self) -> str:
        """What the variant's pytest id appends to the test's."""
        return f"[gauntlet/{self.preset}]"


def variants(constraints: TopologyConstraints, test_memory_mb: int,
             ceiling: Ceiling) -> tuple[list[Variant], list[Variant]]:
    """The presets `constraints` admit, split into those under the ceiling (run) and
    those over it (left out, to be said in the run's summary)."""
    run: list[Variant] = []
    left_out: list[Variant] = []
    for name in PRESETS:
        topo = preset_topology(name)
        if not constraints.admits(topo):
            continue
        v = Variant(name, topo, memory_mb(topo, test_memory_mb))
        (run if topo.cpus <= ceiling.max_cpus else left_out).append(v)
    return run, left_out


def left_out_line(left_out: list[Variant], ceiling: Ceiling) -> str:
    """The summary's one line for the variants over the ceiling ("" for none)."""
    if not left_out:
        return ""
    cpus = {v.preset: v.topology.cpus for v in left_out}
    names = ", ".join(f"{n} {c} cpus" for n, c in sorted(cpus.items(),
                                                        key=lambda nc: (-nc[1], nc[0])))
    n = len(left_out)
    return (f"gauntlet: {n} variant{'s' if n != 1 else ''} left out: over {ceiling.source} "
            f"({names})")


__all__ = ["CONSTRAINT_FIELDS", "DEFAULTS", "PRESETS", "TCG_MAX_CPUS", "Ceiling",
           "TopologyConstraints", "Variant", "constraints_from", "cpu_ceiling",
           "left_out_line", "memory_mb", "performance_ceiling", "preset_topology",
           "variants"]
