"""Payload definitions: an external binary as a workload.

`Payload.binary(name, binary, ...)` describes a program a test runs in the guest
(`stress-ng`, `fio`, ...): its default arguments, how to read metrics from its
output (`OutputFormat`), the `MetricCheck`s that judge a run, `MetricHint`s
(unit and polarity of a metric, for reports and comparisons) and
`include_files` (host files it needs). The guest sees the host's root at the
same paths, so nothing is copied: a binary is found on the host's PATH (or
given by absolute path) and `locate()` fails with a ConfigError that names the
package to install before any VM boots.

Not supported: extracting metrics from free text with a language model (the Rust
ktstr's `LlmExtract` output format) and scheduler-kind payloads (a scheduler goes
in `ktstr_test(scheduler=...)`).
"""

from __future__ import annotations

import enum
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ktstr.checks.payload_checks import MetricCheck
from ktstr.errors import ConfigError

#: Searched after $PATH: the guest agent's own PATH is nearly empty.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Debian packages of binaries tests commonly run, for the install hint.
DEBIAN_PACKAGES = {"stress-ng": "stress-ng", "fio": "fio", "cyclictest": "rt-tests",
                   "hackbench": "rt-tests", "perf": "linux-perf", "sysbench": "sysbench"}


class OutputFormat(enum.Flag):
    """How metrics are read from a payload's output; the exit code is always kept.

    `EXIT_CODE` is the empty flag, so `OutputFormat.EXIT_CODE | OutputFormat.JSON`
    is `JSON`.
    """

    EXIT_CODE = 0
    JSON = enum.auto()  # the first JSON document of stdout (else stderr)
    YAML = enum.auto()  # block YAML as stress-ng's --yaml writes it


class Polarity(enum.Enum):
    """Which direction of a metric is better, for comparisons across runs."""

    HIGHER_BETTER = "higher_better"
    LOWER_BETTER = "lower_better"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class MetricHint:
    """A metric the payload is known to emit: its unit and polarity."""

    name: str
    unit: str = ""
    polarity: Polarity = Polarity.UNKNOWN

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"MetricHint: name {self.name!r} is empty; hint: a dotted path "
                              "such as 'jobs.0.read.iops'")
        if not isinstance(self.polarity, Polarity):
            raise ConfigError(f"MetricHint {self.name}: polarity {self.polarity!r} is not a "
                              "Polarity; hint: Polarity.HIGHER_BETTER or LOWER_BETTER")


def _strings(what: str, values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ConfigError(f"{what}={values!r} is a single string; hint: pass a list, e.g. "
                          f"[{values!r}]")
    out = tuple(values)
    for v in out:
        if not isinstance(v, str):
            raise ConfigError(f"{what}: {v!r} is not a string; hint: pass every argument as "
                              "a str")
    return out


@dataclass(frozen=True, slots=True)
class Payload:
    """A binary workload; build it with `Payload.binary(...)`. `program` is the binary."""

    name: str
    program: str
    default_args: tuple[str, ...] = ()
    output: OutputFormat = OutputFormat.EXIT_CODE
    checks: tuple[MetricCheck, ...] = ()
    metrics: tuple[MetricHint, ...] = ()
    include_files: tuple[str, ...] = ()

    @classmethod
    def binary(cls, name: str, binary: str, default_args: Iterable[str] = (),
               output: OutputFormat = OutputFormat.EXIT_CODE,
               checks: Iterable[MetricCheck] = (), metrics: Iterable[MetricHint] = (),
               include_files: Iterable[str] = ()) -> Payload:
        """A binary payload; with the defaults only its exit code is kept and nothing is judged."""
        return cls(name, binary, _strings(f"payload {name}: default_args", default_args),
                   output, tuple(checks), tuple(metrics),
                   _strings(f"payload {name}: include_files", include_files))

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"Payload: name {self.name!r} is empty; hint: name it, e.g. "
                              "Payload.binary('stress-ng', 'stress-ng')")
        if not isinstance(self.program, str) or not self.program:
            raise ConfigError(f"payload {self.name}: binary {self.program!r} is empty; hint: "
                              "a program name on PATH or an absolute path")
        if not isinstance(self.output, OutputFormat):
            raise ConfigError(f"payload {self.name}: output {self.output!r} is not an "
                              "OutputFormat; hint: OutputFormat.JSON, YAML or EXIT_CODE")
        if (self.output & OutputFormat.JSON) and (self.output & OutputFormat.YAML):
            raise ConfigError(f"payload {self.name}: output {self.output!r} asks for two "
                              "parsers; hint: choose OutputFormat.JSON or OutputFormat.YAML")
        for c in self.checks:
            if not isinstance(c, MetricCheck):
                raise ConfigError(f"payload {self.name}: check {c!r} is not a MetricCheck; "
                                  "hint: e.g. MetricCheck.exit_code_eq(0)")
        for h in self.metrics:
            if not isinstance(h, MetricHint):
                raise ConfigError(f"payload {self.name}: metric {h!r} is not a MetricHint")

    def locate(self) -> str:
        """The absolute path of the binary (host path = guest path); ConfigError if absent."""
        if "/" in self.program:
            path = Path(self.program)
            if not path.is_absolute():
                raise ConfigError(f"payload {self.name}: binary {self.program} is a relative "
                                  "path; hint: give an absolute path or a name on PATH")
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise ConfigError(f"payload {self.name}: binary {self.program} does not exist "
                                  "or is not executable; hint: build or install it there")
            return str(path)
        search = os.pathsep.join(p for p in (os.environ.get("PATH", ""), SYSTEM_PATH) if p)
        found = shutil.which(self.program, path=search)
        if found is None:
            pkg = DEBIAN_PACKAGES.get(self.program)
            how = (f"apt-get install {pkg} (scripts/setup-host.sh installs it)" if pkg
                   else "install the package that provides it, or pass an absolute path")
            raise ConfigError(f"payload {self.name}: binary {self.program!r} not found on "
                              f"PATH or in {SYSTEM_PATH}; hint: {how}")
        return os.path.abspath(found)

    def check_files(self) -> None:
        """Every include file must exist on the host (which the guest sees as its root)."""
        for f in self.include_files:
            if not Path(f).is_absolute() or not Path(f).exists():
                raise ConfigError(f"payload {self.name}: include file {f} does not exist or "
                                  "is not an absolute path; hint: give the absolute host path "
                                  "of an existing file")

    def check_runnable(self) -> str:
        """`locate()` and `check_files()`: what the runner calls before a VM boots."""
        path = self.locate()
        self.check_files()
        return path

    def shown_metrics(self) -> list[str]:
        """Metrics a report names: those the checks and hints mention, in that order."""
        names = [c.metric for c in self.checks if c.metric] + [h.name for h in self.metrics]
        return list(dict.fromkeys(names))
