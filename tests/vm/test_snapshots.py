"""Restored guests: as good as booted ones, each its own, and a bad snapshot costs a boot.

The first run of a VM configuration boots cold and saves a snapshot; the runs
after it restore that snapshot (ktstr.vm.snapshot).
"""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ktstr.runner.shell import run_shell
from ktstr.runner.vmrun import RunResult
from ktstr.topology import Topology
from ktstr.vm.kernel import resolve_kernel
from ktstr.vm.sched.cache import cached_binaries
from ktstr.vm.snapshot import SavedGuest, snapshots_root
from tests.vm import snapshot_bodies

KTSTR = str(Path(sys.executable).parent / "ktstr")


def _seen(r: RunResult) -> dict[str, str]:
    assert r.passed, (r.outcome, r.error, r.console_tail)
    assert r.result is not None
    return dict(line.split("=", 1) for line in r.result["details"])


def _restored(run_vm, name: str) -> list[RunResult]:
    """Runs of `name` until two were restored (the first may have to boot and save)."""
    runs = [run_vm(snapshot_bodies, name)]
    if runs[0].boot_mode != "restored":
        assert runs[0].snapshot, "a cold boot with snapshots on saves one"
    runs += [run_vm(snapshot_bodies, name) for _ in range(3 - len(runs))]
    restored = [r for r in runs if r.boot_mode == "restored"]
    assert len(restored) >= 2, [(r.boot_mode, r.restore_fallback) for r in runs]
    return restored


def test_restored_runs_each_get_fresh_randomness_and_the_current_time(run_vm):
    a, b = (_seen(r) for r in _restored(run_vm, "entropy_and_clock")[-2:])
    for key in ("urandom", "random", "uuid"):
        assert a[key] != b[key], f"two restored guests drew the same {key}"
    assert abs(float(b["time"]) - time.time()) < 30, "the guest clock is the snapshot's"
    assert float(b["time"]) > float(a["time"])


def test_a_restored_guest_passes_the_topology_check(run_vm):
    r = _restored(run_vm, "two_nodes")[-1]
    assert r.topology_seen["nodes"] == {"0": "0-3", "1": "4-7"}, r.topology_seen
    assert r.topology_seen["llcs"] == ["0-3", "4-7"]
    assert r.boot_s < 5.0, "a restore that takes this long is a boot"


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 4096] = b"\xa5" * min(4096, len(data) - mid)
    path.write_bytes(bytes(data[: max(64, len(data) * 3 // 4)]))


def test_a_corrupt_snapshot_is_replaced_by_a_cold_boot(run_vm):
    first = run_vm(snapshot_bodies, "private_snapshot")
    assert first.passed and first.snapshot
    snap = SavedGuest(first.snapshot, snapshots_root())
    assert snap.exists()
    _corrupt(snap.state)
    r = run_vm(snapshot_bodies, "private_snapshot")
    assert r.passed, (r.error, r.console_tail)
    assert r.boot_mode == "cold"
    assert "could not restore" in r.restore_fallback
    assert r.snapshot == snap.key and snap.exists(), "the cold boot saves it anew"
    again = run_vm(snapshot_bodies, "private_snapshot")
    assert again.passed and again.boot_mode == "restored"


def test_cold_flag_boots_and_saves_nothing(tmp_path):
    out = subprocess.run([KTSTR, "test", "--cold", "-q", "-p", "no:cacheprovider",
                          "--ktstr-run-dir", str(tmp_path),
                          f"{snapshot_bodies.__file__}::entropy_and_clock"],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    # " cold]", or " cold cpu_wait=...]" when other VMs held the host's CPUs for a while.
    assert re.search(r"boot=\S+ cold[ \]]", out.stdout), out.stdout


def test_a_restored_guest_attaches_a_sched_ext_scheduler():
    kernel = resolve_kernel(None)
    scx_simple = cached_binaries(kernel).get("scx_simple")
    if scx_simple is None:
        pytest.fail("scx_simple is not built for this kernel; run `ktstr sched build`")
    script = (f"{scx_simple} >/dev/null & pid=$!; for i in $(seq 100); do "
              "[ \"$(cat /sys/kernel/sched_ext/state)\" = enabled ] && break; sleep 0.1; done; "
              "cat /sys/kernel/sched_ext/state /sys/kernel/sched_ext/root/ops; "
              "kill -INT $pid; wait $pid; cat /sys/kernel/sched_ext/state")
    topo = Topology.parse("1n1l2c1t")
    results = [run_shell(topo, kernel_spec=None, command=script, tcg_threads="single",
                         timeout_s=120) for _ in range(2)]  # the second is restored
    assert results[1].boot_mode == "restored"
    for res in results:
        assert res.stdout.split() == ["enabled", "simple", "disabled"], res.stdout + res.stderr
