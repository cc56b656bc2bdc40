"""ktstr.system.proc: fake /proc files (odd comms) and the live kernel's own counters."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from ktstr.system import fs, proc

SCHED = """\
w0 (4121, #threads: 1)
-------------------------------------------------------------------
se.exec_start                                :        650721.314830
se.nr_migrations                             :                   12
nr_switches                                  :                  340
nr_voluntary_switches                        :                  300
nr_involuntary_switches                      :                   40
mm->numa_scan_seq                            :                    0
policy                                       :                    0
"""


def proc_tree(root: Path, pid: int, **files: str) -> Path:
    (root / str(pid)).mkdir(parents=True)
    for name, text in files.items():
        (root / str(pid) / name).write_text(text)
    return root


def stat_line(pid: int, comm: str, processor: int) -> str:
    # fields 3..52 of proc(5); field 39 (processor) is index 36 after the comm
    rest = [str(i) for i in range(3, 53)]
    rest[0] = "R"
    rest[39 - 3] = str(processor)
    return f"{pid} ({comm}) " + " ".join(rest) + "\n"


def test_task_schedstat_reads_three_counters(tmp_path: Path) -> None:
    root = proc_tree(tmp_path, 7, schedstat="123456 789 42\n")
    assert proc.task_schedstat(7, root) == (123456, 789, 42)


def test_task_sched_parses_name_value_lines(tmp_path: Path) -> None:
    root = proc_tree(tmp_path, 4121, sched=SCHED)
    sched = proc.task_sched(4121, root)
    assert sched["se.nr_migrations"] == 12
    assert sched["nr_voluntary_switches"] == 300
    assert sched["nr_involuntary_switches"] == 40
    assert sched["se.exec_start"] == pytest.approx(650721.314830)
    assert sched["mm->numa_scan_seq"] == 0
    assert not any(k.startswith("w0") for k in sched)  # header skipped


@pytest.mark.parametrize("comm", ["spin", "a b", "x) y (z", "evil) 3 4 5 ) "])
def test_task_cpu_splits_after_the_last_paren(tmp_path: Path, comm: str) -> None:
    root = proc_tree(tmp_path, 9, stat=stat_line(9, comm, processor=3))
    assert proc.task_cpu(9, root) == 3
    fields = proc.parse_stat(stat_line(9, comm, 3))
    assert fields[0] == "9" and fields[1] == comm and fields[2] == "R"


def test_missing_task_raises_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(fs.SysIoError, match=r"/4242/schedstat \(ENOENT\)"):
        proc.task_schedstat(4242, tmp_path)


def test_truncated_stat_raises(tmp_path: Path) -> None:
    root = proc_tree(tmp_path, 5, stat="5 (x) R 1 2\n")
    with pytest.raises(fs.SysIoError, match="field 39 missing"):
        proc.task_cpu(5, root)


def test_task_cpu_follows_a_pinned_child() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    target = cpus[-1]
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.sched_setaffinity(0, {target})
            while True:
                pass
        finally:
            os._exit(0)
    try:
        deadline = time.monotonic() + 5
        while os.sched_getaffinity(pid) != {target} and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        assert proc.task_cpu(pid) == target
        run1, _, _ = proc.task_schedstat(pid)
        time.sleep(0.2)
        run2, _, slices = proc.task_schedstat(pid)
        assert run2 > run1 and slices > 0  # it spins, so on-CPU time grows
        assert "se.nr_migrations" in proc.task_sched(pid)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


STATUS = """\
Name:\tw0
State:\tR (running)
Tgid:\t4121
Cpus_allowed:\t0f
Cpus_allowed_list:\t0-2,3
Mems_allowed_list:\t0
"""


def test_task_status_and_cpus_allowed_read_the_status_file(tmp_path: Path) -> None:
    root = proc_tree(tmp_path, 4121, status=STATUS)
    status = proc.task_status(4121, root)
    assert (status["Name"], status["State"], status["Cpus_allowed"]) == ("w0", "R (running)",
                                                                         "0f")
    assert proc.task_cpus_allowed(4121, root) == frozenset({0, 1, 2, 3})


@pytest.mark.parametrize("line", ["", "Cpus_allowed_list:\t\n", "Cpus_allowed_list:\t0-x\n"])
def test_task_cpus_allowed_without_a_cpu_list_raises(tmp_path: Path, line: str) -> None:
    root = proc_tree(tmp_path, 6, status="Name:\tw\n" + line)
    with pytest.raises(fs.SysIoError, match=r"cannot parse .*/6/status: Cpus_allowed_list is"):
        proc.task_cpus_allowed(6, root)


def test_task_cpus_allowed_matches_sched_getaffinity_of_a_pinned_thread() -> None:
    target = max(os.sched_getaffinity(0))
    seen: list[frozenset[int]] = []

    def pinned() -> None:
        os.sched_setaffinity(0, {target})
        seen.append(proc.task_cpus_allowed(threading.get_native_id()))

    t = threading.Thread(target=pinned)
    t.start()
    t.join()
    assert seen == [frozenset({target})]
    assert proc.task_cpus_allowed(os.getpid()) == frozenset(os.sched_getaffinity(0))


def test_task_cgroup_is_the_cgroup2_line_relative_to_the_root(tmp_path: Path) -> None:
    root = proc_tree(tmp_path, 9, cgroup="1:name=systemd:/x\n0::/ktstr/cg_0\n")
    assert proc.task_cgroup(9, root) == "ktstr/cg_0"
    assert proc.parse_cgroup("0::/\n") == ""
    assert proc.parse_cgroup("3:cpu:/v1only\n") == ""


def test_task_cgroup_of_self_matches_the_kernels_file() -> None:
    with open(f"/proc/{os.getpid()}/cgroup") as f:
        line = next(ln for ln in f if ln.startswith("0::"))
    assert proc.task_cgroup("self") == line[3:].strip().strip("/")


def test_thread_priority_is_20_plus_nice_for_a_normal_thread() -> None:
    with proc.ThreadPriority() as prio:
        assert prio.read() == 20 + os.getpriority(os.PRIO_PROCESS, 0)


def test_thread_priority_reads_field_18_of_a_fake_tree(tmp_path: Path) -> None:
    (tmp_path / "thread-self").mkdir()
    rest = [str(i) for i in range(3, 53)]
    rest[18 - 3] = "-51"  # an RT task at rt_priority 50
    (tmp_path / "thread-self" / "stat").write_text("5 (a) b) " + " ".join(rest) + "\n")
    with proc.ThreadPriority(tmp_path) as prio:
        assert prio.read() == -51


def test_cpu_times_reads_the_cpu_line(tmp_path: Path) -> None:
    (tmp_path / "stat").write_text("cpu  10 0 5 100 1 0 0 0 0 0\ncpu0 10 0 5 100 1 0 0 0 0 0\n")
    assert proc.cpu_times(tmp_path) == (10, 0, 5, 100, 1, 0, 0, 0, 0, 0)
    (tmp_path / "stat").write_text("intr 1 2\n")
    with pytest.raises(fs.SysIoError, match="is not the cpu line"):
        proc.cpu_times(tmp_path)
    assert len(proc.cpu_times()) >= 4  # the running kernel's
