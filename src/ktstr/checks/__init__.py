"""Checks layer: `Assert` thresholds with their merge chain, and `AssertResult`.

`Assert.assert_cgroup(reports, cpuset)` judges one cgroup's `WorkerReport`s
(starvation, fairness spread, scheduling gap, isolation, throughput CV,
minimum work rate, p99 wake latency) and returns an `AssertResult` carrying
the detail lines and per-cgroup stats of a failure report.
"""

from ktstr.checks.payload_checks import MetricCheck
from ktstr.checks.result import AssertResult, PayloadResult
from ktstr.checks.stats import CgroupStats, ScenarioStats
from ktstr.checks.thresholds import Assert

__all__ = ["Assert", "AssertResult", "CgroupStats", "MetricCheck", "PayloadResult",
           "ScenarioStats"]
