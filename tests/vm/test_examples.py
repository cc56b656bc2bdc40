"""The README's examples pass in a VM (the failing one is checked in test_failures)."""

from examples import test_custom_scenario, test_mixed_workloads


def test_mixed_workloads_passes_with_two_llcs(run_vm):
    r = run_vm(test_mixed_workloads, "mixed_workloads")
    assert r.outcome == "passed", r.error + r.report
    assert r.topology == "1n2l2c1t"
    stats = r.result["stats"]
    assert len(stats["cgroups"]) == 2


def test_custom_scenario_passes(run_vm):
    r = run_vm(test_custom_scenario, "workers_follow_cpuset_move")
    assert r.outcome == "passed", r.error + r.report


def test_seed_custom_scenario_cpuset_shrink_passes(run_vm):
    r = run_vm(test_custom_scenario, "workers_follow_cpuset_shrink")
    print(r.report)  # the --- stats --- block: cg_0's migrations among them
    assert r.outcome == "passed", r.error + r.report
    assert r.topology == "1n2l4c1t"
