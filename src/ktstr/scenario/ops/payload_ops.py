"""The ops on payloads: start one in the background, wait for it, kill it.

A run is addressed by its payload's name and its cgroup ("" for the runner's
own). One name may run once per cgroup at a time; `Op.wait_payload` and
`Op.kill_payload` must match exactly one run (naming the cgroup settles an
ambiguity). Whatever still runs when its cgroup is removed, or when the
scenario ends, is killed. Each run's metrics and checks are recorded in the
result's `payloads`, not judged: a payload op's checks do not fail the test
(gate on them with `ctx.payload`). The rules are ktstr.payloads.run's; the
checks before a run apply them to the step list, so a binary that is missing
or a run that is started twice fails before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ktstr.errors import ConfigError
from ktstr.payloads import Payload, RunningPayload
from ktstr.payloads import start as start_payload
from ktstr.payloads.run import already_running, not_one
from ktstr.scenario.ops import Op, check_cgroup_name

if TYPE_CHECKING:
    from ktstr.scenario.live import LiveScenario


@dataclass(frozen=True, slots=True)
class RunPayload(Op):
    """`Op.run_payload`: a payload started in the background, in `cgroup` or the runner's own."""

    payload: Payload
    args: tuple[str, ...] = ()
    cgroup: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.payload, Payload):
            raise ConfigError(f"Op.run_payload: {self.payload!r} is not a Payload; hint: "
                              "build one with Payload.binary(...) or use ktstr.payloads")
        if self.cgroup is not None:
            check_cgroup_name("Op.run_payload: cgroup", self.cgroup)

    def names(self) -> tuple[str, ...]:
        return () if self.cgroup is None else (self.cgroup,)

    def check_payloads(self, running: list[tuple[str, str]]) -> None:
        self.payload.locate()  # a missing binary fails before anything runs
        key = (self.payload.name, self.cgroup or "")
        if key in running:
            raise already_running(*key)
        running.append(key)

    def apply(self, live: LiveScenario) -> None:
        live.payloads.check_free(self.payload.name, self.cgroup or "")
        cgroup_dir = None if self.cgroup is None else live.ctx.cgroups.path(self.cgroup)
        live.payloads.add(start_payload(self.payload, self.args, cgroup=self.cgroup or "",
                                        cgroup_dir=cgroup_dir, judged=False))


def _check_payload_name(what: str, name: object) -> None:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{what}: payload name {name!r} is empty; hint: pass the "
                          "Payload's name, e.g. STRESS_NG.name")


def _take_one(op: str, name: str, cgroup: str | None, running: list[tuple[str, str]]) -> None:
    """Remove from `running` the one run that `op` on `name` (in `cgroup`) addresses."""
    found = [p for p in running if p[0] == name and (cgroup is None or p[1] == cgroup)]
    if len(found) != 1:
        raise not_one(op, name, cgroup, [c for _, c in found])
    running.remove(found[0])


@dataclass(frozen=True, slots=True)
class WaitPayload(Op):
    """`Op.wait_payload`: a wait for a running payload's exit; its metrics recorded."""

    name: str
    cgroup: str | None = None

    def __post_init__(self) -> None:
        _check_payload_name("Op.wait_payload", self.name)
        if self.cgroup is not None:
            check_cgroup_name("Op.wait_payload: cgroup", self.cgroup)

    def check_payloads(self, running: list[tuple[str, str]]) -> None:
        _take_one("Op.wait_payload", self.name, self.cgroup, running)

    def apply(self, live: LiveScenario) -> None:
        live.record(live.payloads.take("Op.wait_payload", self.name, self.cgroup),
                    RunningPayload.wait)


@dataclass(frozen=True, slots=True)
class KillPayload(Op):
    """`Op.kill_payload`: a running payload killed (SIGKILL); its metrics recorded."""

    name: str
    cgroup: str | None = None

    def __post_init__(self) -> None:
        _check_payload_name("Op.kill_payload", self.name)
        if self.cgroup is not None:
            check_cgroup_name("Op.kill_payload: cgroup", self.cgroup)

    def check_payloads(self, running: list[tuple[str, str]]) -> None:
        _take_one("Op.kill_payload", self.name, self.cgroup, running)

    def apply(self, live: LiveScenario) -> None:
        live.record(live.payloads.take("Op.kill_payload", self.name, self.cgroup),
                    RunningPayload.kill)
