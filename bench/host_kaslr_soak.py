"""Cold boots at forced host-KASLR offsets (ktstr.vm.hostkaslr): the smallest, the largest
and N random ones; each checks that `_text` in the guest's /proc/kallsyms moved by exactly
the offset the host chose, and prints the boot's attempts and time.

    .venv/bin/python bench/host_kaslr_soak.py 6
"""

from __future__ import annotations

import os
import random
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ["KTSTR_HOST_KASLR"] = "on"

from bench import host_kaslr_probe_test as probe_test  # noqa: E402
from ktstr.runner.vmrun import TestLocation, run_in_vm  # noqa: E402
from ktstr.vm import hostkaslr, machine  # noqa: E402
from ktstr.vm.kernel import resolve_kernel  # noqa: E402

LINKED_TEXT = 0xFFFFFFFF81000000


class Forced(random.Random):
    """A chooser that picks the offset it was given."""

    def __init__(self, offset: int) -> None:
        super().__init__()
        self.offset = offset

    def choice(self, seq: Sequence[int]) -> int:  # type: ignore[override]
        return self.offset


def boot_at(offset: int) -> None:
    # The machine relocates through this name; the bench gives it its own chooser.
    machine.write_relocated = (  # type: ignore[assignment]
        lambda src, dst, rng=None: hostkaslr.write_relocated(src, dst, Forced(offset)))
    where = TestLocation(test_id="bench::probe", module_file=probe_test.__file__,
                         module_name=probe_test.__name__, qualname="probe",
                         sys_path=tuple(sys.path), cwd=os.getcwd())
    runs = Path(tempfile.mkdtemp(prefix="ktstr-bench-"))
    r = run_in_vm(probe_test.probe, where, kernel_spec=None, run_dir=runs, cold=True)
    m = re.search(r"PROBE _text=([0-9a-f]+)", f"{r.error} {r.report}")
    moved = int(m[1], 16) - LINKED_TEXT if m else None
    verdict = "OK" if moved == offset else f"MISMATCH ({r.outcome}; {r.console_log})"
    print(f"offset {offset:#x}: _text moved by {moved if moved is None else hex(moved)} "
          f"{verdict}, attempts {r.boot_attempts}, boot {r.boot_s:.2f} s", flush=True)
    if moved == offset:
        shutil.rmtree(runs)


def main() -> None:
    vmlinux = resolve_kernel(None).host_kaslr_image()
    if vmlinux is None:
        raise SystemExit("the newest cached kernel cannot be relocated by the host")
    offsets = hostkaslr.load_image(vmlinux).offsets()
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    for offset in [offsets[0], offsets[-1], *random.sample(list(offsets), count)]:
        boot_at(offset)


if __name__ == "__main__":
    main()
