"""Test bodies for test_snapshots.py: what a restored guest shows of itself.

Not a test module (no test_ prefix). Each body reports what it saw as detail
lines of a passing result, which the host reads from RunResult.result.
"""

import os
import random
import time

from ktstr import AssertResult, Ctx, ktstr_test


def _seen() -> AssertResult:
    with open("/proc/sys/kernel/random/uuid") as f:
        uuid = f.read().strip()
    return AssertResult(details=[f"urandom={os.urandom(16).hex()}", f"random={random.random()}",
                                 f"uuid={uuid}", f"time={time.time()}"])


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=1)
def entropy_and_clock(ctx: Ctx) -> AssertResult:
    return _seen()


# Its own memory size: its snapshot is this module's alone, to corrupt at will.
@ktstr_test(llcs=1, cores=2, threads=1, duration_s=1, memory_mb=1536)
def private_snapshot(ctx: Ctx) -> AssertResult:
    return _seen()


@ktstr_test(numa_nodes=2, llcs=2, cores=2, threads=2, duration_s=1)
def two_nodes(ctx: Ctx) -> AssertResult:
    return _seen()
