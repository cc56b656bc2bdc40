"""`--budget DURATION`: which runs of a gauntlet fit a time budget, chosen greedily.

Each candidate run (a test's own variant or one of its gauntlet variants) covers
features: its CPU-count bucket (the power of two at or above its CPUs), its LLC count,
SMT on or off, its NUMA node count, and the test itself. `choose` takes, again and
again, the candidate that adds the most features not yet covered per estimated second
(ties: the lower node id) and that still fits in what is left of the budget; a
candidate that adds features but does not fit is left out ("over budget"). When every
feature a fitting candidate could add is covered, what is left of the budget goes to
the remaining candidates, cheapest first (ties: node id). The result depends only on
the node ids, topologies and estimates, so every machine given the same estimates
makes the same choice.

An estimate is a recorded wall time (boot or restore plus body, as an earlier run's
sidecar measured it) or else `default_estimate`: the restored-run wall time of
docs/gauntlet.md's table by vCPU count (a gauntlet run restores the guest its first
cold boot saved), or its cold-run wall time under `--cold`, plus the test's body
beyond the table's 2 s.

A definition: it imports only the topology.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field

from ktstr.topology import Topology

_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smh]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600}

#: docs/gauntlet.md's measurement (single-thread TCG, a 2 s body): vCPUs -> wall time of
#: a restored run and of a cold run (s). Above the last row the last row is used.
TABLE_VCPUS = (4, 8, 16, 32, 64)
RESTORED_WALL_S = (3.59, 3.62, 5.21, 6.10, 20.52)
COLD_WALL_S = (12.87, 13.77, 16.03, 47.89, 51.58)
TABLE_BODY_S = 2.0


def parse_duration(text: str) -> float:
    """`90s`, `10m`, `1h` or plain seconds (`45`, `7.5`) -> seconds > 0; ValueError
    naming the text otherwise."""
    m = _DURATION.fullmatch(text.strip())
    if m is None or float(m[1]) <= 0:
        raise ValueError(f"--budget {text!r}: expected a positive duration such as 90s, "
                         "10m, 1h or plain seconds")
    return float(m[1]) * _UNIT_S[m[2]]


def default_estimate(topology: Topology, duration_s: float, cold: bool = False) -> float:
    """The estimated wall time of a run never recorded: the table's row at or above its
    vCPU count (restored, or cold when `cold`) plus the body beyond the table's 2 s."""
    row = min(bisect_left(TABLE_VCPUS, topology.cpus), len(TABLE_VCPUS) - 1)
    wall = (COLD_WALL_S if cold else RESTORED_WALL_S)[row]
    return wall + max(0.0, duration_s - TABLE_BODY_S)


def cpu_bucket(cpus: int) -> int:
    """The power of two at or above `cpus`."""
    return 1 << (cpus - 1).bit_length()


@dataclass(frozen=True, slots=True)
class Candidate:
    """One run that may be chosen: its node id, the test it runs, its topology and its
    estimated wall time (s)."""

    nodeid: str
    test: str
    topology: Topology
    estimate_s: float

    @property
    def features(self) -> frozenset[tuple[str, object]]:
        t = self.topology
        return frozenset({("cpus", cpu_bucket(t.cpus)), ("llcs", t.llcs),
                          ("smt", t.threads > 1), ("numa", t.numa_nodes),
                          ("test", self.test)})


@dataclass(slots=True)
class Choice:
    """What `choose` kept (in the order it chose them) and left out (over budget)."""

    budget_s: float
    chosen: list[Candidate] = field(default_factory=list)
    left_out: list[Candidate] = field(default_factory=list)

    @property
    def estimate_s(self) -> float:
        return sum(c.estimate_s for c in self.chosen)


def choose(candidates: Sequence[Candidate], budget_s: float) -> Choice:
    """The greedy choice of the module's docstring."""
    choice = Choice(budget_s)
    covered: set[tuple[str, object]] = set()
    left = budget_s
    pending = sorted(candidates, key=lambda c: c.nodeid)
    while True:
        fitting = [c for c in pending if c.features - covered and c.estimate_s <= left]
        if not fitting:
            break
        best = min(fitting, key=lambda c: (-len(c.features - covered) / max(c.estimate_s, 1e-9),
                                           c.nodeid))
        choice.chosen.append(best)
        covered |= best.features
        left -= best.estimate_s
        pending.remove(best)
    for c in sorted(pending, key=lambda c: (c.estimate_s, c.nodeid)):
        if c.estimate_s <= left:
            choice.chosen.append(c)
            left -= c.estimate_s
        else:
            choice.left_out.append(c)
    return choice


__all__ = ["Candidate", "Choice", "choose", "cpu_bucket", "default_estimate",
           "parse_duration"]
