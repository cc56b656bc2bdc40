"""`WorkType`: the base every work type derives from.

A work type is a frozen, slotted dataclass whose fields are its parameters and
whose `run(loop)` is what one worker process does until it is told to stop. The
loop (`ktstr.work.loop.WorkLoop`) owns the counters, the checkpoints and the stop
flag, so a new type is one small class:

    @dataclass(frozen=True, slots=True)
    class SpinWait(WorkType):
        def run(self, loop: WorkLoop) -> None:
            while loop.running:
                loop.spin()
                loop.iterations += 1

Subclasses register themselves by class name: `WorkType.from_name("SpinWait")`
builds one with default parameters, `WorkType.ALL_NAMES` lists every name.
Types that need explicit parameters (`Sequence`, `Custom`) set `by_name = False`:
they are named but cannot be built from a name.

Parameters are validated when a type is built, by ktstr.validators (`count`,
`seconds`): durations are float seconds (a `datetime.timedelta` is accepted and
converted); zero, negative, infinite and NaN durations raise `ConfigError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ktstr.errors import ConfigError

if TYPE_CHECKING:
    from ktstr.work.loop import WorkLoop


class WorkType:
    """What each worker process does; subclasses are frozen slotted dataclasses.

    `name` is the PascalCase variant name (the class name), `group_size` the
    number of workers that cooperate as one unit (None for ungrouped types; a
    grouped type needs a worker count divisible by it).
    """

    __slots__ = ()

    #: Every registered work type name, in registration order.
    ALL_NAMES: ClassVar[tuple[str, ...]] = ()
    #: Whether `from_name` may build this type from its default parameters.
    by_name: ClassVar[bool] = True
    _registry: ClassVar[dict[str, type[WorkType]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        # `dataclass(slots=True)` builds a second class with the same name: the
        # registry keeps the last one, the final class.
        super().__init_subclass__(**kwargs)
        WorkType._registry[cls.__name__] = cls
        if cls.__name__ not in WorkType.ALL_NAMES:
            WorkType.ALL_NAMES = (*WorkType.ALL_NAMES, cls.__name__)

    @property
    def name(self) -> str:
        """The PascalCase variant name, as `from_name` takes it."""
        return type(self).__name__

    @property
    def group_size(self) -> int | None:
        """Workers per cooperating group; None when workers are independent.

        A grouped type's workers meet in the arena it builds when constructed
        (its `_arena`, see ktstr.work.pairing), so the group is the arena's size.
        """
        arena = getattr(self, "_arena", None)
        return None if arena is None else int(arena.size)

    def run(self, loop: WorkLoop) -> None:
        """Do this type's work through `loop` until `loop.running` turns False."""
        raise NotImplementedError(f"work type {self.name} does not run in a WorkLoop")

    @classmethod
    def from_name(cls, name: str) -> WorkType:
        """The work type called `name`, with its default parameters."""
        found = WorkType._registry.get(name)
        if found is not None and found.by_name:
            return found()
        if found is not None:
            raise ConfigError(
                f"work type {name!r} cannot be built from its name: it needs explicit "
                f"parameters; hint: construct it, e.g. work.{name}(...)")
        close = [n for n in WorkType.ALL_NAMES if n.lower() == name.lower()]
        import difflib  # only on this error path: the guest's start-up pays per import

        close = close or difflib.get_close_matches(name, WorkType.ALL_NAMES, n=1)
        hint = f"did you mean {close[0]!r}?" if close else (
            "one of " + ", ".join(WorkType.ALL_NAMES))
        raise ConfigError(f"unknown work type {name!r}; hint: {hint}")
