"""The block-I/O work types block on the VM's scratch disk (body in scratch_disk_bodies.py),
in a booted guest and in one restored from a snapshot."""

from ktstr.settings import settings
from tests.vm import scratch_disk_bodies


def test_io_types_block_on_the_scratch_disk_booted_and_restored(run_vm) -> None:
    runs = [run_vm(scratch_disk_bodies, "io_types_block_on_the_scratch_disk") for _ in range(2)]
    for r in runs:
        assert r.passed, (r.boot_mode, r.outcome, r.error, r.result, r.console_tail)
        assert r.result is not None
        print(r.boot_mode, "\n".join(r.result["details"]))
    if not settings().cold:  # the first run saved the guest (or restored it): now restored
        assert runs[1].boot_mode == "restored", runs[1].restore_fallback
