"""Test bodies for test_inline_config.py (not collected).

The scheduler is a wrapper script the pytest test writes into its tmp dir (the guest
sees host paths): it records its arguments and a copy of the file its `--config=`
names into /run (the guest's own tmpfs), then execs the real scx_simple without
them (scx_simple rejects options it does not know). The declaration below only
carries the config seam; the test swaps in the wrapper's path.
"""

import json
from pathlib import Path

from ktstr import Ctx, Scheduler, SchedulerSpec, ktstr_test
from ktstr.system import sched_ext

GUEST_PATH = "/include-files/ktstr-inline.json"
RECORD = Path("/run/ktstr-config-wrapper")
CONFIG = {"layers": [{"name": "batch", "weight": 2}], "slice_us": 5000}

WRAPPED = Scheduler("scx_simple_wrapped", binary=SchedulerSpec.path("/replaced/by/the/test"),
                    config_file_def=("--config={file}", GUEST_PATH))


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=1, scheduler=WRAPPED, config=CONFIG)
def inline_config_reaches_the_scheduler(ctx: Ctx) -> None:
    argv = (RECORD / "argv").read_text().splitlines()
    assert argv == [f"--config={GUEST_PATH}"], argv
    seen_at_start = json.loads((RECORD / "config").read_text())
    assert seen_at_start == CONFIG, seen_at_start
    assert json.loads(Path(GUEST_PATH).read_text()) == CONFIG
    assert sched_ext.ops_name() == "simple", "the wrapped scx_simple is not the one attached"
