"""Test bodies that must fail or hang, run by test_failures.py through the runner.

Not a test module (no test_ prefix): pytest must not collect these as tests.
"""

import time

from ktstr import Ctx, ktstr_test


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=1)
def body_raises(ctx: Ctx) -> None:
    raise ValueError("boom: the body raised 42")


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=1, timeout_s=45)
def body_hangs(ctx: Ctx) -> None:
    while True:
        time.sleep(3600)

