import pytest

from ktstr.errors import ConfigError
from ktstr.topology import Topology, format_cpulist, parse_cpulist


def test_parse_round_trips_the_string_form():
    t = Topology.parse("2n4l2c2t")
    assert (t.numa_nodes, t.llcs, t.cores, t.threads) == (2, 4, 2, 2)
    assert str(t) == "2n4l2c2t"
    assert t.cpus == 16


@pytest.mark.parametrize("bad", ["2n3x", "", "1n2l2c", "n2l2c1t", "1n2l2c1t1"])
def test_parse_rejects_malformed_strings_naming_them(bad):
    with pytest.raises(ConfigError, match="is not of the form <n>n<l>l<c>c<t>t"):
        Topology.parse(bad)


def test_zero_llcs_is_rejected_naming_the_field():
    with pytest.raises(ConfigError, match=r"llcs=0 is invalid"):
        Topology(1, 0, 2, 1)


def test_llcs_must_divide_over_numa_nodes():
    with pytest.raises(ConfigError, match="llcs=3 cannot be split over numa_nodes=2"):
        Topology(2, 3, 1, 1)


def test_cpu_places_follow_qemu_socket_core_thread_order():
    t = Topology.parse("2n2l2c2t")
    assert t.llc_cpus(0) == {0, 1, 2, 3}
    assert t.llc_cpus(1) == {4, 5, 6, 7}
    assert t.node_cpus(1) == {4, 5, 6, 7}
    assert t.core_siblings(5) == {4, 5}
    p = t.place(6)
    assert (p.node, p.llc, p.core, p.thread) == (1, 1, 3, 0)


def test_several_llcs_per_node():
    t = Topology.parse("2n4l1c1t")
    assert t.node_cpus(0) == {0, 1}
    assert t.place(3).node == 1 and t.place(3).llc == 3


def test_unknown_llc_and_node_are_errors():
    t = Topology.parse("1n2l2c1t")
    with pytest.raises(ConfigError, match="LLC 2 does not exist"):
        t.llc_cpus(2)
    with pytest.raises(ConfigError, match="NUMA node 1 does not exist"):
        t.node_cpus(1)


def test_cpulist_format_and_parse():
    assert format_cpulist({0, 1, 2, 3, 6, 8, 9}) == "0-3,6,8-9"
    assert parse_cpulist("0-3,6,8-9\n") == {0, 1, 2, 3, 6, 8, 9}
    assert parse_cpulist("") == frozenset()
    with pytest.raises(ConfigError):
        parse_cpulist("0-x")
