"""Lock, class-mismatch and producer/consumer work types hit their kernel paths in a guest."""

import pytest

from tests.vm import work_locks_bodies


@pytest.mark.parametrize("body", [
    "mutex_contention_convoy",
    "priority_inversion_pi_boosts_the_holder",
    "priority_inversion_plain_does_not_boost",
    "asymmetric_waker_crosses_classes",
    "cache_pipe_records_wake_latency",
    "producer_consumer_queue_waits",
])
def test_work_locks(run_vm, body: str) -> None:
    r = run_vm(work_locks_bodies, body)
    assert r.outcome == "passed", r.error + r.report
    for rep in (r.result or {}).get("reports", []):  # the figures, for `pytest -s`
        print(body, {k: rep.get(k) for k in ("tid", "iterations", "voluntary_csw",
                                             "involuntary_csw", "wake_latency_us", "metrics",
                                             "notes")})
