"""Ready-made payloads: stress-ng and fio from Debian (scripts/setup-host.sh installs both).

Imported as `ktstr.payloads.STRESS_NG` and `ktstr.payloads.FIO`.

`STRESS_NG` writes its `--metrics-brief` figures as YAML to stdout (its log
stays on stderr): per stressor `metrics.<i>.bogo-ops`,
`metrics.<i>.bogo-ops-per-second-real-time`, `...-usr-sys-time`,
`wall-clock-time`, `user-time`, `system-time`, `cpu-usage-per-instance`,
`max-rss`, in the order of the stressors on the command line, plus
`system-info.*`. Give it the stressors and a `--timeout`:
`ctx.payload(STRESS_NG, args=["--cpu", "1", "--timeout", "2"])`.

`FIO` prints its JSON report: `jobs.<i>.read.iops`, `.bw` (KiB/s),
`.clat_ns.mean`, `.clat_ns.percentile.99.000000`, the same under `write`, and
every other number fio reports. Give it a job:
`args=["--name=j", "--filename=/tmp/f", "--size=8M", "--rw=randread",
"--runtime=2", "--time_based"]`.

Both require exit code 0. Derive a variant with more checks with
`dataclasses.replace(STRESS_NG, checks=(*STRESS_NG.checks, MetricCheck.min(...)))`.
"""

from __future__ import annotations

from ktstr.checks.payload_checks import MetricCheck
from ktstr.payloads.defs import MetricHint, OutputFormat, Payload, Polarity

HB, LB = Polarity.HIGHER_BETTER, Polarity.LOWER_BETTER

STRESS_NG = Payload.binary(
    "stress-ng", "stress-ng",
    # /proc/self/fd/1, not /dev/stdout: a guest's devtmpfs has no /dev/stdout link.
    default_args=["--metrics-brief", "--yaml", "/proc/self/fd/1"],
    output=OutputFormat.YAML,
    checks=[MetricCheck.exit_code_eq(0)],
    metrics=[MetricHint("metrics.0.bogo-ops", "bogo ops", HB),
             MetricHint("metrics.0.bogo-ops-per-second-real-time", "bogo ops/s", HB),
             MetricHint("metrics.0.cpu-usage-per-instance", "%", HB)],
)

FIO = Payload.binary(
    "fio", "fio",
    default_args=["--output-format=json"],
    output=OutputFormat.JSON,
    checks=[MetricCheck.exit_code_eq(0)],
    metrics=[MetricHint("jobs.0.read.iops", "iops", HB),
             MetricHint("jobs.0.read.bw", "KiB/s", HB),
             MetricHint("jobs.0.read.clat_ns.percentile.99.000000", "ns", LB),
             MetricHint("jobs.0.write.iops", "iops", HB),
             MetricHint("jobs.0.write.bw", "KiB/s", HB),
             MetricHint("jobs.0.write.clat_ns.percentile.99.000000", "ns", LB)],
)

__all__ = ["FIO", "STRESS_NG"]
