"""Every error ktstr raises, grouped by who must act on it.

All derive from `KtstrError`. Fields are passed to `super().__init__` so the
exceptions pickle across the fork boundary of workers and the guest/host
channel. Messages follow one shape: what failed, the value, why, and a
`hint:` with the fix.
"""

from __future__ import annotations


class KtstrError(Exception):
    """Base of every error ktstr raises on purpose."""


class ConfigError(KtstrError):
    """A test, topology, kernel spec or option has a bad value (the user fixes it)."""


class HostSetupError(KtstrError):
    """Something the host needs is missing; the message names the install command."""

    def __init__(self, what: str, install: str) -> None:
        super().__init__(what, install)
        self.what = what
        self.install = install

    def __str__(self) -> str:
        return f"{self.what}; hint: {self.install}"


class KernelError(KtstrError):
    """A kernel could not be found, fetched or used."""


class VmLaunchError(KtstrError):
    """qemu could not start, or died before the guest agent said hello."""

    def __init__(self, message: str, argv: list[str] | None = None,
                 exit_code: int | None = None, console_tail: str = "") -> None:
        super().__init__(message, argv, exit_code, console_tail)
        self.message = message
        self.argv = argv or []
        self.exit_code = exit_code
        self.console_tail = console_tail

    def __str__(self) -> str:
        parts = [self.message]
        if self.exit_code is not None:
            parts.append(f"qemu exit code {self.exit_code}")
        if self.console_tail:
            parts.append("guest console tail:\n" + self.console_tail)
        return "\n".join(parts)


class GuestLostError(KtstrError):
    """The guest stopped answering before its deadline."""


class SystemError_(KtstrError):
    """A /sys, /proc or cgroup operation failed; names the path and errno."""


class MonitorUnavailable(KtstrError):
    """The guest kernel cannot be watched from the host (no vmcoreinfo, symbols or BTF);
    the message says what is missing. The test still runs, without the monitor."""
