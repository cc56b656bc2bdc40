"""SchedPolicy, CloneMode.THREAD and pcomm in a guest (bodies in workload_policy_bodies.py;
each asserts from the guest kernel's /proc and cgroup files)."""

import pytest

from tests.vm import workload_policy_bodies


@pytest.mark.parametrize("body", ["policies_seen_by_the_kernel", "pcomm_threads_share_one_leader",
                                  "cgroup_def_pcomm_and_policy_pass_through",
                                  "ext_policy_follows_the_kernel"])
def test_policy_and_threads_in_guest(run_vm, body: str) -> None:
    r = run_vm(workload_policy_bodies, body)
    assert r.passed, (r.outcome, r.error, r.result, r.console_tail)
    assert r.result is not None
    print("\n".join(r.result["details"]))
