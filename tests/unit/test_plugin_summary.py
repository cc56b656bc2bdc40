from ktstr.pytest_plugin.item import failure_text, summary_line
from ktstr.runner.boot import BootMode
from ktstr.runner.vmrun import RunResult
from ktstr.scenario.snapshot import Snapshot

REPORT = ("  unfair cgroup: spread=66% (0-67%) 4 workers on 2 cpus (threshold 15%)\n\n"
          "--- stats ---\n4 workers, 2 cpus, 0 migrations, worst_spread=66.4%, worst_gap=0ms\n"
          "  cg0: workers=4 cpus=2 spread=66.4% gap=0ms migrations=0 iter=14787\n")


def result(outcome: str, **kw) -> RunResult:
    return RunResult(test_id="examples/test_x.py::three_on_one_cpu", outcome=outcome,
                     topology="1n1l2c1t", kernel="7.2.13", accel="tcg", scheduler="eevdf",
                     wall_s=19.57, boot_s=10.8, report=REPORT, **kw)


def test_pass_line_has_time_id_and_only_the_stats():
    text = summary_line(result("passed"))
    first, *rest = text.splitlines()
    assert first.startswith("    PASS [   19.57s] examples/test_x.py::three_on_one_cpu "
                            "ktstr/three_on_one_cpu")
    assert rest[0] == "--- stats ---"
    assert "unfair cgroup" not in text


def test_fail_line_leads_with_the_violated_threshold():
    text = summary_line(result("failed"))
    lines = text.splitlines()
    assert lines[0].startswith("    FAIL [   19.57s]")
    assert lines[1] == "  unfair cgroup: spread=66% (0-67%) 4 workers on 2 cpus (threshold 15%)"
    assert "--- stats ---" in lines


def test_timeout_failure_text_names_the_outcome_and_evidence():
    text = failure_text(result("timeout", error="no result within the run's deadline",
                               console_tail="[ 1.0] Run /init as init process",
                               console_log="/runs/x/console.log"))
    assert text.startswith("ktstr_test 'three_on_one_cpu' [topo=1n1l2c1t] timed out:")
    assert "--- guest console (tail; whole log: /runs/x/console.log) ---" in text


def test_pass_line_says_how_the_vm_started():
    assert summary_line(result("passed", boot_mode=BootMode.RESTORED)).splitlines()[0].endswith(
        "[topo=1n1l2c1t accel=tcg boot=10.8s restored]")
    assert summary_line(result("passed")).splitlines()[0].endswith("boot=10.8s]")
    # A run that waited for host CPUs (ktstr.vm.cpulock) says how long.
    assert summary_line(result("passed", cpu_wait_s=4.25)).splitlines()[0].endswith(
        "boot=10.8s cpu_wait=4.2s]")


def test_pass_line_of_a_payload_only_test_shows_the_payload_block():
    report = "--- payloads ---\nfio pid 7: exit 0 after 1.2s, 80 metrics\n  jobs.0.read.iops=5180\n"
    text = summary_line(RunResult(test_id="t.py::fio", outcome="passed", topology="1n1l2c1t",
                                  kernel="7.2.13", accel="tcg", scheduler="eevdf",
                                  report=report))
    assert text.splitlines()[1:] == report.rstrip().splitlines()


def test_failure_text_lists_the_captures_taken():
    caps = {n: {"name": n, "frozen_ms": ms, "hits": h, "missing": [],
                "rq": {"0": {}, "1": {}}, "scx": {"attached": True, "ops_name": "qmap"}}
            for n, ms, h in (("a", 3.25, 1), ("on_error", 14.0, 2))}
    text = failure_text(result("failed", snapshots={n: Snapshot(c) for n, c in caps.items()}))
    block = text.split("--- snapshots ---\n", 1)[1].splitlines()
    assert block[0] == "  snapshot 'a': 3.2 ms frozen, hits 1, 2 cpus, qmap, 0 maps, 0 vars"
    assert block[1].startswith("  snapshot 'on_error': 14.0 ms frozen, hits 2")
    assert "--- snapshots ---" not in failure_text(result("failed"))


def test_an_interrupted_run_says_so_and_why():
    why = "qemu was stopped by SIGINT from pid 77 (bash), not by ktstr (it exited with status 0)"
    r = result("interrupted", error=why)
    assert summary_line(r).splitlines()[1] == "  " + why
    assert summary_line(r).startswith("    INTERRUPTED [   19.57s]")
    assert failure_text(r).startswith("ktstr_test 'three_on_one_cpu' [topo=1n1l2c1t] was "
                                      "interrupted:\n  " + why)
    assert not r.passed
