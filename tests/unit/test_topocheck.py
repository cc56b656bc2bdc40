from ktstr.guest.topocheck import TopologyView, compare
from ktstr.topology import Topology


def view_of(t: Topology) -> TopologyView:
    return TopologyView(
        online=frozenset(range(t.cpus)),
        llcs=[t.llc_cpus(i) for i in reversed(range(t.llcs))],
        nodes={n: t.node_cpus(n) for n in range(t.numa_nodes)},
        siblings={c: t.core_siblings(c) for c in range(t.cpus)})


def test_matching_view_has_no_problems():
    t = Topology.parse("2n2l2c2t")
    assert compare(t, view_of(t)) == []


def test_each_mismatch_is_named():
    want = Topology.parse("2n2l2c2t")
    seen = view_of(Topology.parse("1n1l4c2t"))
    problems = compare(want, seen)
    assert any(p.startswith("LLC groups are [0-7], expected [0-3] [4-7]") for p in problems)
    assert any(p.startswith("NUMA nodes are node0=[0-7], expected node0=[0-3], node1=[4-7]")
               for p in problems)


def test_missing_cpus_and_wrong_siblings():
    want = Topology.parse("1n1l2c2t")
    seen = view_of(want)
    seen = TopologyView(online=frozenset({0, 1, 2}), llcs=seen.llcs, nodes=seen.nodes,
                        siblings={0: frozenset({0}), 1: frozenset({1})})
    problems = compare(want, seen)
    assert "online CPUs are 0-2, expected 0-3" in problems
    assert "cpu0 SMT siblings are [0], expected [0-1]" in problems
