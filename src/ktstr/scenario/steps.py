"""`Step` and `execute_steps`: a scenario as phases of ops, cgroups and holds.

A `Step` is `ops` + `setup` (CgroupDefs, or a function `(ctx) -> defs` called
when the step starts) + a `HoldSpec`. `execute_steps` runs steps 1..N in order,
setting `ctx.current_step` (0 is the baseline before any step):

- a non-loop step applies its ops, then creates its setup cgroups, forks and
  starts their workers, then holds `frac * ctx.duration` or `fixed` seconds;
- a loop step (`HoldSpec.loop_at(i)`) creates its setup once, then applies its
  ops every `i` seconds until the scenario's time runs out: `ctx.duration`
  seconds counted from the start of `execute_steps` (at least one pass).

Phases and judging: a step's setup cgroups belong to that step; at its end
their workers are stopped, collected and judged (`ctx.checks.assert_cgroup`,
with the cgroup's current cpuset) and the cgroups removed. Cgroups made by
`Op.add_cgroup` and workers forked by `Op.spawn` live on until
`Op.stop_cgroup` / `Op.remove_cgroup` or the end of the last step, and are
judged then. Every collected report carries `step = ctx.current_step` at the
time of collection. A frozen cgroup is thawed before its workers are asked to
stop. Workers are killed and cgroups removed in a `finally`, whatever raised.

Payloads (`Op.run_payload`) run in the background until `Op.wait_payload` /
`Op.kill_payload`, until their cgroup is removed (a step's setup cgroup at the
step's end, or `Op.remove_cgroup`), or until the scenario ends: whatever still
runs then is killed. Each run's metrics and checks land in the result's
`payloads`, recorded, not judged (a payload op's checks do not fail the test;
use `ctx.payload` to gate on them). Starting a name again where it still
runs, and waiting for or killing one that is not running, are errors, found
before anything runs where the step list shows them.

A `Backdrop` (backdrop.py) adds cgroups and ops set up at step 0, before step
1, that persist like op-added cgroups and are judged after the last step.

The step list (and backdrop) is checked before anything is created: validate.py.
Each op carries its own check and effect (ktstr.scenario.ops); the state they
act on while the steps run is a `LiveScenario` (live.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ktstr.checks import AssertResult
from ktstr.scenario.backdrop import Backdrop
from ktstr.scenario.ctx import Ctx
from ktstr.scenario.live import LiveScenario
from ktstr.scenario.ops import Op
from ktstr.scenario.step import Step
from ktstr.scenario.validate import validate_steps


def _loop(live: LiveScenario, ops: Sequence[Op], interval: float, deadline: float) -> None:
    """Apply `ops` every `interval` seconds until `deadline` (monotonic); at least once."""
    while True:
        began = time.monotonic()
        for op in ops:
            op.apply(live)
        next_pass = began + interval
        if next_pass >= deadline:
            time.sleep(max(0.0, deadline - time.monotonic()))
            return
        time.sleep(max(0.0, next_pass - time.monotonic()))


def execute_steps(ctx: Ctx, steps: Sequence[Step], *,
                  captures: dict[str, list[int]] | None = None,
                  backdrop: Backdrop | None = None) -> AssertResult:
    """Run `steps` in order (see the module docstring); one merged result.

    `captures`, when given, receives each `Op.capture_cgroup_procs` as tag -> pids.
    `backdrop`: cgroups and ops set up before step 1 that live through every step.
    """
    steps = list(steps)
    validate_steps(ctx, steps, backdrop)
    live = LiveScenario(ctx, {} if captures is None else captures)
    deadline = time.monotonic() + ctx.duration
    try:
        if backdrop is not None:
            ctx.current_step = 0
            live.setup_backdrop(backdrop.cgroups)
            for op in backdrop.ops:
                op.apply(live)
        for i, step in enumerate(steps, 1):
            ctx.current_step = i
            if step.hold.is_loop:
                live.setup(step.setup)
                _loop(live, step.ops, step.hold.value, deadline)
            else:
                for op in step.ops:
                    op.apply(live)
                live.setup(step.setup)
                time.sleep(step.hold.seconds(ctx.duration))
            live.end_step()
        live.finish()
        return live.result
    finally:
        live.cleanup()
