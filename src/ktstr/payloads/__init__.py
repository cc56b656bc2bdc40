"""Payloads: external binaries (stress-ng, fio, ...) run as a test's workload.

`Payload.binary(...)` defines one (defs.py); `extract` reads metrics from its
output; `run` starts it in a cgroup and turns its end into a `PayloadResult`
judged by its `MetricCheck`s. Ready-made definitions, `STRESS_NG` and `FIO`, are
in catalogue.py. Tests run payloads with `ctx.payload(p)`, with the
`Op.run_payload` / `wait_payload` / `kill_payload` step ops, or as
`ktstr_test(payload=p)`.
"""

from ktstr.checks.payload_checks import MetricCheck
from ktstr.checks.result import PayloadResult
from ktstr.payloads.catalogue import FIO, STRESS_NG
from ktstr.payloads.defs import MetricHint, OutputFormat, Payload, Polarity
from ktstr.payloads.run import LivePayloads, RunningPayload, start

__all__ = ["FIO", "STRESS_NG", "LivePayloads", "MetricCheck", "MetricHint", "OutputFormat",
           "Payload", "PayloadResult", "Polarity", "RunningPayload", "start"]
