"""Schbench and Taobench in a guest: their figures are there and sane (bodies in
work_schbench_bodies.py)."""

import pytest

from tests.vm import work_schbench_bodies as bodies


@pytest.mark.parametrize("name", ["schbench_default_mode", "schbench_own_defaults",
                                  "schbench_rps_mode", "taobench_mix"])
def test_schbench_family(run_vm, name):
    r = run_vm(bodies, name)
    assert r.passed, (r.outcome, r.error, r.report, r.console_tail)
