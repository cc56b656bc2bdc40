"""AffinityIntent placement read back from the guest kernel (bodies in affinity_bodies.py):
each worker's Cpus_allowed_list is its resolved mask, it ran only there, and a
cross_cgroup request follows its cgroup's cpuset when the cpuset is cleared."""

from tests.vm import affinity_bodies


def test_intents_place_each_worker(run_vm) -> None:
    r = run_vm(affinity_bodies, "intents_place_each_worker")
    assert r.passed, (r.outcome, r.error, r.result, r.console_tail)
    assert r.result is not None
    print("\n".join(r.result["details"]))
