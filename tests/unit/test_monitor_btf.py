"""The BTF parser against the real BTF of the 7.2.13 Debian kernel.

The expected offsets come from the kernel itself: its vmcoreinfo (saved from a
booted guest next to the BTF) states OFFSET()/SIZE() of a few structs, compiled
in; the runqueue offsets were read back from a running guest (its `rq->cpu` read
at them equals the CPU number).
"""

from pathlib import Path

import pytest
import zstandard

from ktstr.errors import MonitorUnavailable
from ktstr.monitor import btf as B
from ktstr.monitor.layout import KernelLayout, layout_from_btf
from ktstr.monitor.vmcoreinfo import parse

DATA = Path(__file__).parent / "data" / "monitor"
RELEASE = "7.2.13+deb14-amd64"


@pytest.fixture(scope="module")
def kbtf() -> B.Btf:
    raw = (DATA / f"vmlinux-{RELEASE}.btf.zst").read_bytes()
    return B.Btf(zstandard.ZstdDecompressor().decompress(raw, max_output_size=64 << 20))


@pytest.fixture(scope="module")
def vmcoreinfo():
    return parse((DATA / f"vmcoreinfo-{RELEASE}.txt").read_text())


def test_parses_every_type(kbtf):
    assert len(kbtf) == 124_640  # ids 0 (void) .. 124,639
    assert kbtf.type(1).id == 1


@pytest.mark.parametrize("path", ["page.flags", "page._refcount", "page.mapping", "page.lru",
                                  "page._mapcount", "page.private", "pglist_data.node_id",
                                  "pglist_data.node_start_pfn", "zone.free_area",
                                  "zone.spanned_pages", "printk_info.caller_id",
                                  "printk_ringbuffer.fail", "prb_desc_ring.tail_id"])
def test_member_offsets_agree_with_the_kernels_vmcoreinfo(kbtf, vmcoreinfo, path):
    assert kbtf.offsetof(path) == vmcoreinfo.offsets[path]


@pytest.mark.parametrize("name", ["page", "pglist_data", "zone", "printk_ringbuffer",
                                  "printk_info", "list_head"])
def test_struct_sizes_agree_with_the_kernels_vmcoreinfo(kbtf, vmcoreinfo, name):
    assert kbtf.size(kbtf.struct(name).id) == vmcoreinfo.sizes[name]


def test_dotted_paths_cross_nested_and_anonymous_members(kbtf):
    assert kbtf.field("rq.nr_running") == B.Field(0, kbtf.field("rq.nr_running").type_id, 4)
    assert kbtf.offsetof("rq.clock") == 3728
    assert kbtf.offsetof("rq.cpu") == 3880
    assert kbtf.offsetof("rq.scx.local_dsq.nr") == 2592
    assert kbtf.offsetof("rq.scx.nr_running") == 2696
    assert kbtf.field("task_struct.comm").size == 16
    assert kbtf.field("scx_sched.watchdog_timeout").size == 8
    # page.lru lives in an anonymous union inside an anonymous struct
    assert "lru" not in [m.name for m in kbtf.members(kbtf.struct("page").id)]


def test_missing_member_names_what_there_is(kbtf):
    with pytest.raises(B.BtfError, match=r"rq.scx has no member 'nope'.*local_dsq"):
        kbtf.field("rq.scx.nope")
    with pytest.raises(B.BtfError, match="no type 'no_such_struct'"):
        kbtf.struct("no_such_struct")


def test_enums_and_arrays(kbtf):
    assert kbtf.enum("scx_enable_state")["SCX_ENABLED"] == 1
    elem, n = kbtf.array(kbtf.field("task_struct.comm").type_id)
    assert n == 16 and kbtf.size(elem) == 1


def test_bad_magic_is_refused():
    with pytest.raises(B.BtfError, match="magic"):
        B.Btf(b"\0" * 64)


def test_layout_has_the_monitor_fields_and_event_counters(kbtf):
    lay = layout_from_btf(kbtf, "abc", RELEASE, {"runqueues": 0xFFFFFFFF83E2E000})
    assert lay.fields["rq.scx.local_dsq.nr"] == (2592, 4)
    assert lay.events["select_cpu_fallback"] == 0
    assert lay.events["dispatch_keep_last"] == 16
    again = KernelLayout.from_json(lay.to_json())
    assert again == lay
    assert again.symbol("runqueues", 0x1000) == 0xFFFFFFFF83E2F000


def test_layout_without_runqueue_types_is_unavailable(kbtf, monkeypatch):
    monkeypatch.setattr("ktstr.monitor.layout.CORE_FIELDS", ("rq.no_such_field",))
    monkeypatch.setattr("ktstr.monitor.layout.FIELDS", ("rq.no_such_field",))
    with pytest.raises(MonitorUnavailable, match=r"lacks rq\.no_such_field"):
        layout_from_btf(kbtf, "abc", RELEASE, {})
