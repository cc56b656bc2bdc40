"""Running payloads: one run (`RunningPayload`) and the live set the step ops address.

`start(payload, args, cgroup, cgroup_dir)` resolves the binary, forks it into
its cgroup before exec (ktstr.workload.process) and returns a handle; `wait()`
or `kill()` reaps it, extracts its metrics and judges its checks into a
`PayloadResult`. The argv is the binary, then `payload.default_args`, then the
run's own `args` (a run's args append to the defaults, never replace them).

`LivePayloads` keeps the runs started by `Op.run_payload`, keyed by (name,
cgroup) with "" for the runner's own cgroup, and enforces these rules:
a second run of a name in a cgroup where it still runs is an error; waiting
for or killing a name that is not running (never started, or already
waited/killed) is an error; a bare name that runs in several cgroups is
ambiguous and the error lists them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ktstr.checks.payload_checks import evaluate
from ktstr.checks.result import PayloadResult, tail
from ktstr.errors import ConfigError
from ktstr.payloads.defs import Payload
from ktstr.payloads.extract import extract
from ktstr.workload.process import ChildExit, ChildProcess


class RunningPayload:
    """A started payload; `wait()` or `kill()` turns it into a `PayloadResult`."""

    def __init__(self, payload: Payload, argv: list[str], cgroup: str, child: ChildProcess,
                 judged: bool) -> None:
        self.payload = payload
        self.argv = argv
        self.cgroup = cgroup
        self.child = child
        self.judged = judged

    @property
    def name(self) -> str:
        return self.payload.name

    @property
    def pid(self) -> int:
        return self.child.pid

    def wait(self, timeout: float | None = None) -> PayloadResult:
        """Until it exits (or `timeout` seconds, then SIGKILL); metrics and verdict."""
        return self._result(self.child.wait(timeout))

    def kill(self) -> PayloadResult:
        """SIGKILL its process group now; metrics (of what it printed) and verdict."""
        return self._result(self.child.kill())

    def _result(self, end: ChildExit) -> PayloadResult:
        p = self.payload
        metrics, stream = extract(p.output, end.stdout, end.stderr)
        details = evaluate(p.name, p.checks, end.exit_code, end.signal, metrics, end.stderr)
        return PayloadResult(
            name=p.name, argv=list(self.argv), cgroup=self.cgroup, pid=end.pid,
            exit_code=end.exit_code, signal=end.signal, killed=end.killed, wall_s=end.wall_s,
            metrics=metrics, stream=stream, details=details, judged=self.judged,
            stdout_tail=tail(end.stdout), stderr_tail=tail(end.stderr),
            units={h.name: h.unit for h in p.metrics if h.unit}, shown=p.shown_metrics())


def start(payload: Payload, args: Sequence[str] = (), *, cgroup: str = "",
          cgroup_dir: Path | None = None, judged: bool = True) -> RunningPayload:
    """Fork `payload` with `args` into `cgroup_dir` (None: the caller's own cgroup)."""
    if not isinstance(payload, Payload):
        raise ConfigError(f"{payload!r} is not a Payload; hint: build one with "
                          "Payload.binary(name, binary, ...)")
    if isinstance(args, str):
        raise ConfigError(f"payload {payload.name}: args={args!r} is a single string; hint: "
                          f"pass a list, e.g. [{args!r}]")
    argv = [payload.locate(), *payload.default_args, *(str(a) for a in args)]
    child = ChildProcess.spawn(argv, cgroup_dir=cgroup_dir)
    return RunningPayload(payload, argv, cgroup, child, judged)


def _where(cgroup: str) -> str:
    return f"cgroup {cgroup}" if cgroup else "the runner's cgroup"


def already_running(name: str, cgroup: str) -> ConfigError:
    """The error for starting `name` again in `cgroup` while it runs there."""
    return ConfigError(f"Op.run_payload: payload {name!r} is already running in "
                       f"{_where(cgroup)}; hint: Op.wait_payload or Op.kill_payload it "
                       "before starting it again there, or run it in another cgroup")


def not_one(op: str, name: str, cgroup: str | None, found: list[str]) -> ConfigError:
    """The error for `op` on `name` matching `found` (cgroups) instead of exactly one run."""
    if not found:
        where = "" if cgroup is None else f" in {_where(cgroup)}"
        return ConfigError(f"{op}: no running payload named {name!r}{where} (never started "
                           "by Op.run_payload, or already waited for or killed); hint: "
                           f"start it with Op.run_payload before {op}")
    where = ", ".join(_where(c) for c in found)
    return ConfigError(f"{op}: payload {name!r} is ambiguous, it runs in {where}; "
                       f"hint: name the cgroup, e.g. {op}({name!r}, cgroup=...)")


class LivePayloads:
    """The payloads `Op.run_payload` started and nobody has waited for or killed yet."""

    def __init__(self) -> None:
        self.runs: list[RunningPayload] = []

    def check_free(self, name: str, cgroup: str) -> None:
        if any(r.name == name and r.cgroup == cgroup for r in self.runs):
            raise already_running(name, cgroup)

    def add(self, run: RunningPayload) -> None:
        self.check_free(run.name, run.cgroup)
        self.runs.append(run)

    def take(self, op: str, name: str, cgroup: str | None) -> RunningPayload:
        """Remove and return the run `op` (e.g. "Op.wait_payload") addresses."""
        found = [r for r in self.runs if r.name == name and (cgroup is None or r.cgroup == cgroup)]
        if len(found) != 1:
            raise not_one(op, name, cgroup, [r.cgroup for r in found])
        self.runs.remove(found[0])
        return found[0]

    def take_in(self, cgroup: str) -> list[RunningPayload]:
        """Remove and return every run placed in `cgroup` (it is about to go away)."""
        mine = [r for r in self.runs if r.cgroup == cgroup]
        self.runs = [r for r in self.runs if r.cgroup != cgroup]
        return mine

    def take_all(self) -> list[RunningPayload]:
        runs, self.runs = self.runs, []
        return runs
