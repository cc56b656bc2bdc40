"""What a test body reads of a snapshot: `Snapshot`, `SnapshotMap`, `ctx.snapshots`.

A capture is taken by the host while the guest stands still (see
ktstr.monitor.captures) and travels as a plain dict: the same dict lands in the
sidecar and, through `ctx.snapshots[name]`, back in the guest. These classes
only read that dict, so they work the same in a test body, in `ktstr report`
and in unit tests on hand-built captures. The scenario layer never learns
where the captures come from: `SnapshotControl` is provided by whoever runs the
body (the guest agent asks the host over the result port).

Capture dict: {"name", "taken_at" (host wall time), "frozen_ms", "missing": [why
some part is absent], "jiffies", "rq": {"<cpu>": {nr_running, clock_ns,
scx_nr_running, local_dsq_depth, curr_pid, curr_comm}}, "scx": {attached,
ops_name, enable_state, events}, and with a scheduler's state read:
"scheduler", "maps": {name: {type, key_size, value_size, max_entries, entries:
[{key, value}], truncated}}, "vars": {global: value}}.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ktstr.errors import KtstrError

#: How many entries of each map `Snapshot.summary()` shows.
SHOWN_ENTRIES = 3


class SnapshotControl(Protocol):
    """Where captures are taken and kept (the guest agent's link to the host)."""

    def capture(self, name: str) -> dict[str, Any]:
        """Take a capture under `name` now; returns its short summary (name, frozen_ms,
        hits, missing). Raises KtstrError when the host cannot capture."""
        ...

    def get(self, name: str) -> dict[str, Any] | None:
        """The latest capture under `name`, with "hits" set; None when there is none."""
        ...

    def names(self) -> list[str]:
        """The names captured so far, in the order first taken."""
        ...

    def watch(self, symbol: str) -> dict[str, Any]:
        """Capture under `symbol` whenever the guest kernel writes it; returns what was
        armed (slot, address). Raises KtstrError for an unknown or unwatchable symbol."""
        ...


class UnknownSnapshot(KtstrError, KeyError):
    """No capture under that name: a KtstrError for the user, a KeyError for Mapping."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _unknown(what: str, name: object, known: list[str], why: str = "") -> KtstrError:
    listed = ", ".join(repr(n) for n in known) or "none"
    return KtstrError(f"{what} {name!r} is not in this snapshot (it has: {listed})"
                      + (f"; {why}" if why else ""))


@dataclass(frozen=True, slots=True)
class MapEntry:
    """One entry of a captured BPF map: its key and value as plain Python."""

    key: Any
    value: Any


class SnapshotMap:
    """One BPF map as captured: entries in the order read, values as plain Python."""

    def __init__(self, name: str, doc: Mapping[str, Any]) -> None:
        self.name = name
        self._doc = doc
        self.entries = [MapEntry(e.get("key"), e.get("value")) for e in doc.get("entries", ())]

    @property
    def type(self) -> str:
        return str(self._doc.get("type", ""))

    @property
    def max_entries(self) -> int | None:
        v = self._doc.get("max_entries")
        return None if v is None else int(v)

    @property
    def truncated(self) -> bool:
        """True when the map held more entries than the capture's bound."""
        return bool(self._doc.get("truncated", False))

    @property
    def is_globals(self) -> bool:
        """A `.bss`/`.data`/`.rodata` section: its entry is the scheduler's globals."""
        return bool(self._doc.get("section")) or self.name.startswith(".") or \
            self.name.rsplit(".", 1)[-1] in ("bss", "data", "rodata")

    @property
    def per_cpu(self) -> bool:
        return "percpu" in self.type.lower().replace("_", "")

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[MapEntry]:
        return iter(self.entries)

    def at(self, i: int) -> MapEntry:
        """The `i`-th entry read (for arrays: key `i`)."""
        try:
            return self.entries[i]
        except IndexError:
            raise KtstrError(f"map {self.name!r}: no entry at {i} (it has {len(self)})") \
                from None

    def get(self, key: Any, default: Any = None) -> Any:
        """The value under `key` (compared as plain values: int, dict, ...), else
        `default`."""
        for e in self.entries:
            if e.key == key:
                return e.value
        return default

    def cpu(self, n: int) -> SnapshotMap:
        """This per-CPU map narrowed to CPU `n`: each value is that CPU's."""
        if not self.per_cpu:
            raise KtstrError(f"map {self.name!r} is a {self.type or 'map of unknown type'}, "
                             "not a per-CPU map; hint: .cpu(n) narrows per-CPU maps only")
        entries = []
        for e in self.entries:
            vals = e.value if isinstance(e.value, list) else []
            if not 0 <= n < len(vals):
                raise KtstrError(f"map {self.name!r}: no CPU {n} (values for {len(vals)} CPUs)")
            entries.append({"key": e.key, "value": vals[n]})
        return SnapshotMap(self.name, {**self._doc, "type": f"{self.type} (cpu {n})",
                                       "entries": entries})

    def summary(self, shown: int = SHOWN_ENTRIES) -> list[str]:
        head = (f"map {self.name} ({self.type or '?'}): {len(self)} entries"
                + (f" of max {self.max_entries}" if self.max_entries is not None else "")
                + (" (truncated)" if self.truncated else "")
                + (f" (unsupported: {self._doc['unsupported']})"
                   if self._doc.get("unsupported") else ""))
        lines = [head]
        lines += [f"  [{_compact(e.key)}] = {_compact(e.value)}" for e in self.entries[:shown]]
        if shown and len(self) > shown:
            lines.append(f"  ... {len(self) - shown} more")
        return lines


class Snapshot:
    """One capture: the scheduler's globals and maps, each CPU's runqueue, sched_ext state."""

    def __init__(self, capture: Mapping[str, Any], hits: int | None = None) -> None:
        self._c = capture
        self.hits = int(capture.get("hits", 1) if hits is None else hits)

    @property
    def name(self) -> str:
        return str(self._c.get("name", ""))

    @property
    def frozen_ms(self) -> float:
        """How long the guest stood still for this capture (host monotonic time)."""
        return float(self._c.get("frozen_ms", 0.0))

    @property
    def taken_at(self) -> float:
        return float(self._c.get("taken_at", 0.0))

    @property
    def missing(self) -> list[str]:
        """Why parts of the capture are absent (guest kernel unreadable, no scheduler)."""
        return [str(m) for m in self._c.get("missing", ())]

    @property
    def scx(self) -> dict[str, Any]:
        return dict(self._c.get("scx", {}))

    @property
    def scheduler(self) -> str | None:
        s = self._c.get("scheduler")
        return None if s is None else str(s)

    @property
    def watch(self) -> dict[str, Any] | None:
        """For a capture a watched write made (Op.watch_snapshot, on_error): `symbol`,
        `address`, and `value`, the watched word as that write left it (on_error: the
        exit kind's name, e.g. "SCX_EXIT_ERROR_BPF"); None for an Op.snapshot capture."""
        w = self._c.get("watch")
        return None if w is None else dict(w)

    def as_dict(self) -> dict[str, Any]:
        return {**self._c, "hits": self.hits}

    def _why_absent(self) -> str:
        return "; ".join(self.missing)

    def var(self, name: str) -> Any:
        """A global of the scheduler (`.bss`/`.data`/`.rodata`) as a plain value; a dotted
        path (`"stats.nr_enq"`, `"arr.2"`) walks into structs and arrays."""
        vars_ = self._c.get("vars", {})
        if name in vars_:
            return vars_[name]
        head, *rest = name.split(".")
        if head not in vars_:
            raise _unknown("variable", name, sorted(vars_), self._why_absent())
        value = vars_[head]
        for i, part in enumerate(rest):
            try:
                value = value[int(part)] if isinstance(value, list) else value[part]
            except (KeyError, ValueError, IndexError, TypeError):
                at = ".".join([head, *rest[:i]])
                has = (sorted(value) if isinstance(value, dict)
                       else f"indices 0..{len(value) - 1}" if isinstance(value, list)
                       else type(value).__name__)
                raise KtstrError(f"variable {name!r}: {at} has no {part!r} (it has: {has})") \
                    from None
        return value

    def vars(self) -> list[str]:
        return sorted(self._c.get("vars", {}))

    def map(self, name: str) -> SnapshotMap:
        maps = self._c.get("maps", {})
        if name not in maps:
            raise _unknown("map", name, sorted(maps), self._why_absent())
        return SnapshotMap(name, maps[name])

    def maps(self) -> list[str]:
        return sorted(self._c.get("maps", {}))

    def cpus(self) -> list[int]:
        return sorted(int(c) for c in self._c.get("rq", {}))

    def rq(self, cpu: int) -> dict[str, Any]:
        """CPU `cpu`'s runqueue fields at the capture (nr_running, clock_ns,
        scx_nr_running, local_dsq_depth, curr_pid, curr_comm)."""
        rq = self._c.get("rq", {})
        if str(cpu) not in rq:
            raise KtstrError(f"snapshot {self.name!r} has no runqueue of cpu {cpu!r} (it has: "
                             f"{', '.join(map(str, self.cpus())) or 'none'})"
                             + (f"; {self._why_absent()}" if self.missing else ""))
        return dict(rq[str(cpu)])

    def line(self) -> str:
        """One line for a failure report."""
        scx = self._c.get("scx", {})
        sched = scx.get("ops_name") or ("no sched_ext scheduler" if scx else "-")
        w = self._c.get("watch")
        wrote = f" ({w.get('symbol')} = {w.get('value')})" if w else ""
        return (f"snapshot {self.name!r}{wrote}: {self.frozen_ms:.1f} ms frozen, "
                f"hits {self.hits}, "
                f"{len(self.cpus())} cpus, {sched}, {len(self.maps())} maps, "
                f"{len(self.vars())} vars" + (f" (missing: {self._why_absent()})"
                                               if self.missing else ""))

    def summary(self, shown: int = SHOWN_ENTRIES) -> list[str]:
        """The capture for `ktstr report`: runqueues, sched_ext state, vars, maps."""
        lines = [self.line()]
        for cpu in self.cpus():
            r = self.rq(cpu)
            lines.append(f"  cpu{cpu}: nr_running={r.get('nr_running')} "
                         f"scx_nr_running={r.get('scx_nr_running')} "
                         f"local_dsq={r.get('local_dsq_depth')} clock={r.get('clock_ns')} "
                         f"curr={r.get('curr_comm')}[{r.get('curr_pid')}]")
        scx = self._c.get("scx", {})
        if scx:
            events = ", ".join(f"{k}={v}" for k, v in sorted(scx.get("events", {}).items())
                               if v)
            lines.append(f"  scx: {scx.get('enable_state', '?')}"
                         + (f", ops {scx['ops_name']}" if scx.get("ops_name") else "")
                         + (f", events: {events}" if events else ""))
        hidden = 0
        for name in self.vars():
            if _is_noise(name):
                hidden += 1
                continue
            lines += [f"  {path} = {_compact(v)}"
                      for path, v in _flatten(name, self._c["vars"][name])]
        if hidden:
            lines.append(f"  ({hidden} more vars not shown: compiler constants and format "
                         "strings)")
        for name in self.maps():
            m = self.map(name)
            # A globals section's one entry is the vars above, member by member.
            lines += ["  " + line for line in m.summary(0 if m.is_globals else shown)]
        return lines


def _is_noise(name: str) -> bool:
    """`.rodata` the compiler made, not the scheduler's author: enum constants kept for
    CO-RE (`__SCX_*`) and bpf_printk format strings (`func.___fmt`)."""
    return name.startswith("__") or "___fmt" in name


def _flatten(path: str, value: Any, depth: int = 0) -> list[tuple[str, Any]]:
    """A struct global member by member (`qa.nr_enqueued = 5`), so counters stay visible;
    arrays stay one compact value."""
    if isinstance(value, dict) and value and depth < 3:
        return [pair for k, v in value.items() for pair in _flatten(f"{path}.{k}", v, depth + 1)]
    return [(path, value)]


def _compact(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def snapshot_lines(captures: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per capture of a run (RunResult.snapshots), for a failure report."""
    return [Snapshot(c).line() for c in captures.values()]


class Snapshots(Mapping[str, Snapshot]):
    """`ctx.snapshots`: the latest capture under each name, fetched when asked for."""

    def __init__(self, control: SnapshotControl | None) -> None:
        self._control = control

    def _need(self) -> SnapshotControl:
        if self._control is None:
            raise KtstrError("ctx.snapshots needs a host that takes captures, which this Ctx "
                             "lacks; hint: snapshots work in a ktstr test (a ctx from the "
                             "guest agent)")
        return self._control

    def __getitem__(self, name: str) -> Snapshot:
        control = self._need()
        capture = control.get(name)
        if capture is None:
            listed = ", ".join(repr(n) for n in control.names()) or "none yet"
            raise UnknownSnapshot(f"no snapshot named {name!r} (taken so far: {listed}); hint: "
                                  f"Op.snapshot({name!r}) in a step takes one")
        return Snapshot(capture)

    def __iter__(self) -> Iterator[str]:
        return iter(self._need().names())

    def __len__(self) -> int:
        return len(self._need().names())
