"""ktstr.gauntlet: the presets, which ones a test admits (its constraints over its
scheduler's), the CPU ceiling, the variants' ids, and the refusals at decoration."""

import pytest

from ktstr.errors import ConfigError
from ktstr.gauntlet import (
    DEFAULTS,
    PRESETS,
    TCG_MAX_CPUS,
    TopologyConstraints,
    cpu_ceiling,
    left_out_line,
    memory_mb,
    performance_ceiling,
    preset_topology,
    variants,
)
from ktstr.scheduler import Scheduler
from ktstr.testdef import ktstr_test
from ktstr.topology import Topology

UNCAPPED = cpu_ceiling(288, "tcg", 2)


def body(ctx):
    return None


def admitted(constraints: TopologyConstraints, ceiling=UNCAPPED) -> list[str]:
    run, _ = variants(constraints, 2048, ceiling)
    return [v.preset for v in run]


def test_the_24_presets_are_the_issue_s_list_with_their_cpu_counts():
    assert len(PRESETS) == 24
    cpus = {name: preset_topology(name).cpus for name in PRESETS}
    assert cpus["tiny-1llc"] == 4 and cpus["smt-2llc"] == 8 and cpus["odd-7llc"] == 14
    assert cpus["max-cpu"] == cpus["max-cpu-nosmt"] == 252
    assert cpus["near-max-llc"] == 240 and cpus["numa4-12llc"] == 192
    assert str(preset_topology("numa2-8llc")) == "2n8l8c2t"


def test_an_unknown_preset_name_is_refused_naming_it():
    with pytest.raises(ConfigError, match=r"no gauntlet preset is named 'tiny-3llc'; hint: "):
        preset_topology("tiny-3llc")


def test_memory_is_64_mib_per_cpu_at_least_256_mib_and_the_test_s():
    assert memory_mb(Topology.parse("1n1l4c1t"), 256) == 256
    assert memory_mb(Topology.parse("1n14l9c2t"), 2048) == 252 * 64
    assert memory_mb(Topology.parse("1n2l2c1t"), 2048) == 2048


def test_defaults_admit_one_numa_node_up_to_12_llcs_and_192_cpus():
    names = admitted(DEFAULTS)
    assert "tiny-1llc" in names and "large-8llc-nosmt" in names
    assert not {"near-max-llc", "max-cpu", "numa2-4llc", "numa4-12llc"} & set(names)
    assert len(names) == 15
    assert admitted(TopologyConstraints()) == names  # unset = the defaults


def test_each_constraint_removes_the_presets_it_excludes():
    assert admitted(TopologyConstraints(requires_smt=True, max_cpus=32)) == [
        "smt-2llc", "smt-3llc", "medium-4llc"]
    assert admitted(TopologyConstraints(min_llcs=5, max_cpus=16)) == ["odd-5llc", "odd-7llc"]
    assert admitted(TopologyConstraints(min_numa_nodes=2, max_numa_nodes=4,
                                        max_llcs=8, max_cpus=32)) == [
        "numa2-4llc", "numa4-8llc"]
    assert admitted(TopologyConstraints(max_llcs=15, max_cpus=252, min_cpus=240)) == [
        "near-max-llc", "max-cpu", "near-max-llc-nosmt", "max-cpu-nosmt"]


def test_the_ceiling_leaves_variants_out_and_the_line_says_which_and_why():
    run, out = variants(TopologyConstraints(max_llcs=3), 2048, cpu_ceiling(8, "tcg", 2))
    assert [v.preset for v in run] == ["tiny-1llc", "tiny-2llc", "smt-2llc"]
    assert [v.preset for v in out] == ["odd-3llc", "smt-3llc"]
    assert left_out_line(out, cpu_ceiling(8, "tcg", 2)) == (
        "gauntlet: 2 variants left out: over --max-cpus 8 (smt-3llc 12 cpus, "
        "odd-3llc 9 cpus)")
    assert left_out_line([], UNCAPPED) == ""


def test_the_default_ceiling_is_the_host_s_cpus_under_kvm_and_measured_under_tcg():
    assert cpu_ceiling(None, "kvm", 64).max_cpus == 64
    assert cpu_ceiling(None, "tcg", 64).max_cpus == TCG_MAX_CPUS
    assert cpu_ceiling(None, "tcg", 2).source == \
        f"the emulation default --max-cpus {TCG_MAX_CPUS}"
    assert cpu_ceiling(None, "kvm", 64).source == "the host's 64 CPUs under KVM"
    assert cpu_ceiling(4, "kvm", 64).max_cpus == 4
    with pytest.raises(ConfigError, match=r"--max-cpus 0 is not a positive integer"):
        cpu_ceiling(0, "tcg", 2)


def test_a_variant_s_suffix_names_its_preset():
    run, _ = variants(TopologyConstraints(max_cpus=4), 2048, UNCAPPED)
    assert [v.suffix for v in run] == ["[gauntlet/tiny-1llc]", "[gauntlet/tiny-2llc]"]
    assert run[0].topology == Topology.parse("1n1l4c1t") and run[0].memory_mb == 2048


def test_a_test_inherits_its_scheduler_s_constraints_and_its_own_win():
    sched = Scheduler("q_gauntlet", binary="scx_qmap",
                      constraints=TopologyConstraints(min_llcs=2, requires_smt=True))
    inherited = ktstr_test(scheduler=sched)(body)
    assert inherited.constraints.given() == {"min_llcs": 2, "requires_smt": True}
    own = ktstr_test(scheduler=sched, min_llcs=3, requires_smt=False, max_cpus=12)(body)
    assert own.constraints.given() == {"min_llcs": 3, "max_cpus": 12, "requires_smt": False}
    assert admitted(own.constraints) == ["odd-3llc", "smt-3llc"]
    assert ktstr_test(body).constraints == TopologyConstraints()


@pytest.mark.parametrize("attrs, message", [
    ({"min_llcs": 0}, "min_llcs=0 is not a positive integer"),
    ({"max_cpus": -4}, "max_cpus=-4 is not a positive integer"),
    ({"min_cpus": 2.5}, "min_cpus=2.5 is not a positive integer"),
    ({"max_numa_nodes": True}, "max_numa_nodes=True is not a positive integer"),
    ({"requires_smt": 1}, "requires_smt=1 is not a bool"),
    ({"min_llcs": 4, "max_llcs": 2}, "min_llcs=4 is above max_llcs=2: no preset can fit"),
    ({"min_llcs": 13}, "min_llcs=13 is above max_llcs=12: no preset can fit"),
    ({"min_numa_nodes": 2}, "min_numa_nodes=2 is above max_numa_nodes=1"),
])
def test_a_bad_constraint_is_refused_at_decoration_naming_the_value(attrs, message):
    with pytest.raises(ConfigError) as err:
        ktstr_test(**attrs)(body)
    assert str(err.value).startswith(f"@ktstr_test on body: {message}")


def test_a_test_s_constraint_that_contradicts_its_scheduler_s_is_refused():
    sched = Scheduler("q_gauntlet", binary="scx_qmap",
                      constraints=TopologyConstraints(min_llcs=4))
    with pytest.raises(ConfigError, match=r"min_llcs=4 is above max_llcs=2"):
        ktstr_test(scheduler=sched, max_llcs=2)(body)


def test_a_scheduler_s_bad_constraints_are_refused_naming_it():
    with pytest.raises(ConfigError, match=r"^scheduler q: constraints: min_llcs=13 is above "
                       r"max_llcs=12: no preset can fit"):
        Scheduler("q", constraints=TopologyConstraints(min_llcs=13))
    with pytest.raises(ConfigError, match=r"^min_cpus=8 is above max_cpus=4"):
        TopologyConstraints(min_cpus=8, max_cpus=4)


def test_performance_mode_lowers_the_ceiling_to_the_host_s_cpus_unless_one_thread_runs_all():
    run_ceiling = cpu_ceiling(8, "tcg", 2)
    assert performance_ceiling(run_ceiling, 64, one_thread=False) == run_ceiling
    assert performance_ceiling(run_ceiling, 2, one_thread=True) == run_ceiling
    low = performance_ceiling(run_ceiling, 2, one_thread=False)
    assert low.max_cpus == 2 and "performance_mode" in low.source and "has 2" in low.source
    run, out = variants(TopologyConstraints(max_llcs=2), 256, low)
    assert not run and {v.preset for v in out} == {"tiny-1llc", "tiny-2llc", "smt-2llc"}
