"""How a Scheduler names its binary (pure; no VM)."""

from __future__ import annotations

import pytest


def test_a_scheduler_binary_is_a_name_a_path_or_a_spec():
    from ktstr.errors import ConfigError
    from ktstr.scheduler import Scheduler, SchedulerSpec, declare_scheduler

    assert Scheduler("q", binary="scx_qmap").spec == SchedulerSpec.discover("scx_qmap")
    assert Scheduler("q", binary="/opt/scx_q").spec == SchedulerSpec.path("/opt/scx_q")
    assert Scheduler("q").spec == SchedulerSpec.discover("q")
    assert declare_scheduler("q_unit", binary="scx_qmap") == Scheduler("q_unit", "scx_qmap")
    with pytest.raises(ConfigError, match=r"binary=3 is neither a name, a path nor a "):
        Scheduler("q", binary=3)  # type: ignore[arg-type]


def test_constraints_must_be_topology_constraints_and_numa_locality_is_refused():
    from ktstr.checks import Assert
    from ktstr.errors import ConfigError
    from ktstr.scheduler import Scheduler

    with pytest.raises(ConfigError) as err:
        Scheduler("q", constraints={"min_llcs": 2})
    assert str(err.value) == ("scheduler q: constraints={'min_llcs': 2} is not a "
                              "TopologyConstraints; hint: constraints="
                              "TopologyConstraints(min_llcs=2)")
    with pytest.raises(ConfigError) as err:
        Scheduler("q", checks=Assert(min_numa_locality=0.5))
    assert str(err.value) == ("scheduler q: checks min_numa_locality=0.5 is not supported yet "
                              "(no check measures NUMA locality yet); hint: leave it unset")
    assert Scheduler("q", constraints=None).constraints is None
