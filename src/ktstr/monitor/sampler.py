"""The sampling thread: one look at the guest every 100 ms while a test runs.

Sampling starts after a start delay (the guest's own
set-up is not the scheduler's doing) and runs every ~100 ms until the run ends;
each sample is the guest-memory reader's look plus each vCPU's host CPU time.
A reader that fails mid-run (the guest is being torn down, or its memory no
longer makes sense) ends the series with the reason kept; it never takes the
run down.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

from ktstr.monitor.sample import MonitorSample

log = logging.getLogger(__name__)

PERIOD_S = 0.1
START_DELAY_S = 0.5

#: One look at the guest (the reader stamps index and host time).
Look = Callable[[], MonitorSample]


class MonitorThread:
    """Collects `MonitorSample`s on a daemon thread between `start()` and `stop()`."""

    def __init__(self, look: Look | None = None,
                 vcpu_time: Callable[[], dict[int, int]] | None = None,
                 period: float = PERIOD_S, start_delay: float = START_DELAY_S, *,
                 prepare: Callable[[], Look] | None = None) -> None:
        """`look` takes one sample; or `prepare`, run on the thread after the start
        delay (opening a guest kernel can take seconds), returns it."""
        if (look is None) == (prepare is None):
            raise ValueError("MonitorThread needs exactly one of look and prepare")
        self._look: Look = look if look is not None else _unprepared
        self._prepare = prepare
        self._vcpu_time = vcpu_time
        self._period = period
        self._start_delay = start_delay
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ktstr-monitor", daemon=True)
        self.samples: list[MonitorSample] = []
        self.error: str | None = None  # why sampling ended early, if it did
        self.sample_cost_s: list[float] = []

    def start(self) -> MonitorThread:
        self._thread.start()
        return self

    def stop(self) -> list[MonitorSample]:
        self._halt.set()
        self._thread.join()
        return self.samples

    def _run(self) -> None:
        if self._halt.wait(self._start_delay):
            return
        if self._prepare is not None:
            try:
                self._look = self._prepare()
            except Exception as e:  # the monitor is unavailable; the run goes on
                self.error = f"{type(e).__name__}: {e}"
                return
        next_at = time.monotonic()
        while not self._halt.is_set():
            began = time.monotonic()
            try:
                self.samples.append(self._take())
            except Exception as e:  # the series ends; the run goes on
                self.error = f"{type(e).__name__}: {e}"
                log.warning("monitor: sampling stopped after %d samples: %s",
                            len(self.samples), self.error)
                return
            self.sample_cost_s.append(time.monotonic() - began)
            # Late (the host did not run this thread)? Skip the missed slots rather than
            # take them back to back: rates over microseconds would mean nothing.
            next_at = max(next_at + self._period, time.monotonic() + self._period / 2)
            self._halt.wait(max(0.0, next_at - time.monotonic()))

    def _take(self) -> MonitorSample:
        sample = self._look()
        if self._vcpu_time is None:
            return sample
        host = self._vcpu_time()
        cpus = tuple(dataclasses.replace(c, vcpu_cpu_ns=host.get(c.cpu)) for c in sample.cpus)
        return dataclasses.replace(sample, cpus=cpus)


def _unprepared() -> MonitorSample:
    raise RuntimeError("the monitor's reader was never prepared")
