"""The body the verifier sweep runs in each VM: the scheduler attached, nothing else.

Its work is done before the body starts: the guest agent has launched the scheduler,
waited for sched_ext to enable it, and read its BPF programs (ktstr.system.bpf) into
the run's scheduler report. The body only confirms the scheduler is still there, so
a scheduler that attaches and dies at once is not reported as verified.
"""

from __future__ import annotations

import os

from ktstr.scenario import Ctx
from ktstr.testdef import KtstrTest, ktstr_test


def still_attached(ctx: Ctx) -> None:
    assert ctx.sched_pid is not None, "the verifier sweep ran without a scheduler"
    assert os.path.exists(f"/proc/{ctx.sched_pid}"), "the scheduler exited after attaching"


verifier_probe: KtstrTest = ktstr_test(still_attached, duration_s=1)
