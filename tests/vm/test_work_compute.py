"""Compute, cache and I/O work types hit their kernel paths (bodies in
work_compute_bodies.py; each asserts from the guest kernel's own counters)."""

import pytest

from tests.vm import work_compute_bodies


@pytest.mark.parametrize("body", ["smt_pairs_on_siblings", "alu_and_ipc_variance_stay_on_cpu",
                                  "cache_yield_switches_every_pass", "io_types_do_their_io",
                                  "io_rand_read_blocks_on_a_virtio_fs"])
def test_compute_types_reach_the_kernel(run_vm, body: str) -> None:
    r = run_vm(work_compute_bodies, body)
    assert r.passed, (r.outcome, r.error, r.result, r.console_tail)
    assert r.result is not None
    print("\n".join(r.result["details"]))
