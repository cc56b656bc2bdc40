"""Class, affinity, cgroup and NUMA churn types hit their kernel paths (bodies in
work_churn_bodies.py; each asserts from the guest kernel's own counters)."""

import pytest

from tests.vm import work_churn_bodies


@pytest.mark.parametrize("body", ["affinity_and_policy_churn", "cgroup_churn_and_attach_storm",
                                  "numa_churn"])
def test_churn_types_reach_the_kernel(run_vm, body: str) -> None:
    r = run_vm(work_churn_bodies, body)
    assert r.passed, (r.outcome, r.error, r.result, r.console_tail)
    assert r.result is not None
    print("\n".join(r.result["details"]))
