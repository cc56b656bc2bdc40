"""Whether a run samples the guest with the host-side monitor (ktstr.monitor.session)."""

from __future__ import annotations

from collections.abc import Mapping

from ktstr.envflag import env_flag

#: `KTSTR_MONITOR=off` (or `ktstr test --no-monitor`) runs VMs without the monitor:
#: for measuring its overhead, or a guest kernel it misreads. The result says so.
ENV_MONITOR = "KTSTR_MONITOR"


def monitor_disabled(env: Mapping[str, str] | None = None) -> bool:
    return not env_flag(ENV_MONITOR, True, env)
