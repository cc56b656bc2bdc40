"""ktstr.system.sched_debug on a real 7.2 sched/debug (captured from a 4-CPU guest under
EEVDF with three spinners pinned to cpu1 and one to cpu2) and on broken texts."""

from __future__ import annotations

from pathlib import Path

import pytest

from ktstr.system import fs
from ktstr.system.sched_debug import CpuDebug, parse_sched_debug, sched_debug

DATA = Path(__file__).parent / "data" / "system" / "sched_debug-7.2.13-eevdf.txt"


def test_header_clocks_and_every_runqueue_of_a_real_file():
    d = parse_sched_debug(DATA.read_text())
    assert (d.ktime_ns, d.cpu_clk_ns, d.jiffies) == (15108658579, 15073934373, 4294896073)
    assert d.cpus == (
        CpuDebug(0, nr_running=1, clock_ns=15073412519, clock_task_ns=15073412519,
                 nr_switches=1235, curr_pid=136),
        CpuDebug(1, nr_running=3, clock_ns=15076939818, clock_task_ns=15076939818,
                 nr_switches=901, curr_pid=137),
        CpuDebug(2, nr_running=1, clock_ns=15080867930, clock_task_ns=15080867930,
                 nr_switches=952, curr_pid=144),
        CpuDebug(3, nr_running=0, clock_ns=15084934548, clock_task_ns=15084934548,
                 nr_switches=984, curr_pid=0),
    )
    assert d.cpu(2).nr_running == 1


def test_class_sections_do_not_override_the_runqueue():
    """cfs_rq/rt_rq sections have `.nr_*` and `.clock`-like lines of their own."""
    text = """\
ktime                                   : 1.000000
cpu_clk                                 : 2.000001
jiffies                                 : 7
cpu#0, 2596.148 MHz
  .nr_running                    : 2
  .nr_switches                   : 5
  .curr->pid                     : 9
  .clock                         : -0.000002
  .clock_task                    : 3.000000
cfs_rq[0]:/
  .nr_running                    : 40
  .clock                         : 41.000000
rt_rq[0]:
  .rt_nr_running                 : 0
"""
    d = parse_sched_debug(text)
    assert (d.ktime_ns, d.cpu_clk_ns, d.jiffies) == (1_000_000, 2_000_001, 7)
    assert d.cpus == (CpuDebug(0, 2, -2, 3_000_000, 5, 9),)
    with pytest.raises(KeyError, match="cpu1 is not in sched/debug"):
        d.cpu(1)


@pytest.mark.parametrize(("text", "message"), [
    ("", "no ktime, cpu_clk, jiffies"),
    ("ktime : 1.000000\ncpu_clk : 1.000000\njiffies : 3\n", "no cpu# section"),
    ("ktime : 1.000000\ncpu_clk : 1.000000\njiffies : 3\ncpu#0\n  .nr_running : 1\n",
     "cpu#0 has no .clock line"),
])
def test_a_text_of_another_shape_is_refused_by_name(text, message):
    with pytest.raises(ValueError, match=message):
        parse_sched_debug(text)


def test_reader_names_the_file(tmp_path):
    (tmp_path / "sched").mkdir()
    (tmp_path / "sched" / "debug").write_text(DATA.read_text())
    assert sched_debug(tmp_path).cpu(1).nr_running == 3
    (tmp_path / "sched" / "debug").write_text("Sched Debug Version: v0.11\n")
    with pytest.raises(fs.SysIoError, match=r"cannot parse .*sched/debug: not a sched/debug"):
        sched_debug(tmp_path)
