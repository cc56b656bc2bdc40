"""`DryRun`: what the checks before a run know while they walk a step list.

`validate_steps` (validate.py) walks the steps without creating anything; each
op's `check(dry)` tests its own rule on this state and records what it changes:
which backdrop and op-added cgroups are alive at that point, which of them are
frozen, the capture tags and watched symbols used so far. The pass being walked
says where it is (`where`, for messages), which cgroup names are visible (None
when the step's setup is a function, whose names are only known when it runs),
which are the step's own setup cgroups, whether the step loops and whether this
is a loop's second pass (`again`).
"""

from __future__ import annotations

from typing import Protocol

from ktstr.errors import ConfigError
from ktstr.scenario.ctx import Ctx


class NamesCgroups(Protocol):
    """An op, as far as the name rule sees it: the cgroups it refers to."""

    def names(self) -> tuple[str, ...]: ...


class DryRun:
    """The scenario as the ops would leave it, for one `validate_steps` call."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.live: set[str] = set()  # backdrop and op-added cgroups alive at this point
        self.frozen: set[str] = set()
        self.tags: set[str] = set()
        self.watched: set[str] = set()
        # The pass being walked; set by `begin`.
        self.where = ""
        self.visible: set[str] | None = None
        self.local: set[str] = set()
        self.loop = False
        self.again = False

    def begin(self, where: str, visible: set[str] | None, local: set[str], loop: bool,
              again: bool = False) -> None:
        """Start a pass over a step's ops. `visible` is None when the step's setup is a
        function (names unknown); `again` marks a loop's second pass, where a capture
        tag may repeat (each pass overwrites it)."""
        self.where, self.visible, self.local = where, visible, local
        self.loop, self.again = loop, again

    def require_names(self, op: NamesCgroups) -> None:
        """Raise ConfigError unless every cgroup `op` names exists at this point."""
        if self.visible is None:
            return
        for name in op.names():
            if name in self.visible:
                continue
            why = ("it is in this step's setup, which is applied after the step's ops"
                   if name in self.local and not self.loop else "no earlier op adds it")
            raise ConfigError(f"{self.where}: {op!r} refers to cgroup {name!r}, which does not "
                              f"exist at that point: {why}; hint: add it with "
                              f"Op.add_cgroup({name!r}) before this op, or use a loop step "
                              "whose setup defines it")

    def add(self, name: str) -> None:
        """A cgroup is created here and lives on."""
        self.live.add(name)
        if self.visible is not None:
            self.visible.add(name)

    def remove(self, name: str) -> None:
        """A cgroup is removed here."""
        self.live.discard(name)
        self.frozen.discard(name)
        if self.visible is not None:
            self.visible.discard(name)

    def exists(self, name: str) -> bool:
        """Whether a cgroup `name` is known to exist at this point."""
        return name in self.live or (self.visible is not None and name in self.visible)

