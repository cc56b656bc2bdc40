"""ktstr's settings: the `KTSTR_*` environment variables, read and checked in one place.

Each variable is one field of `Settings`; `VARIABLES` lists them with what each takes,
its default and what it does (README.md "Settings" shows the same list). `settings()`
reads the environment once, at its first call, and every later call returns the same
value: a process sees one set of settings. A value a variable does not take raises
ConfigError naming the variable, the value and the accepted ones.

On/off switches (`KTSTR_COLD`, `KTSTR_MONITOR`, `KTSTR_KASLR`) read alike: unset or
empty is the default, `0`, `off`, `no` or `false` (any case) is off, anything else on.

Command line options are not settings: `ktstr test --cold` and `--no-monitor` reach the
run as parameters, and these variables only supply the defaults. Nothing in ktstr
writes the environment. A test that changes a variable (monkeypatch.setenv) reads it
anew after `settings.cache_clear()` (tests/conftest.py does it around every test).

A bottom definition: it imports only ktstr.errors and the standard library.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ktstr.errors import ConfigError

ENV_CACHE_DIR = "KTSTR_CACHE_DIR"
ENV_KERNEL = "KTSTR_KERNEL"
ENV_RUN_DIR = "KTSTR_RUN_DIR"
ENV_COLD = "KTSTR_COLD"
ENV_MONITOR = "KTSTR_MONITOR"
ENV_KASLR = "KTSTR_KASLR"
ENV_HOST_KASLR = "KTSTR_HOST_KASLR"
ENV_ACCEL = "KTSTR_ACCEL"
ENV_TCG_THREADS = "KTSTR_TCG_THREADS"
ENV_QEMU = "KTSTR_QEMU"
ENV_BUSYBOX = "KTSTR_BUSYBOX"

#: What turns an on/off switch off (any case); any other non-empty value turns it on.
OFF = frozenset({"0", "off", "no", "false"})
ACCELS = ("kvm", "tcg")
TCG_THREADS = ("multi", "single")


@dataclass(frozen=True, slots=True)
class Variable:
    """One documented environment variable."""

    name: str
    values: str  # what it takes
    default: str
    does: str


VARIABLES = (
    Variable(ENV_CACHE_DIR, "a directory", "the user cache dir (~/.cache/ktstr)",
             "where kernels, built schedulers, initramfs images, saved guests and the "
             "monitor's layouts are cached"),
    Variable(ENV_KERNEL, "a kernel spec (as --kernel)", "the newest cached kernel",
             "the kernel `ktstr test`/pytest boots when --kernel is not given"),
    Variable(ENV_RUN_DIR, "a directory", "./.ktstr-runs/<time>",
             "where console logs and result sidecars go when --ktstr-run-dir is not given"),
    Variable(ENV_COLD, "on/off", "off",
             "boot every VM: never restore a saved guest, never save one (`--cold`)"),
    Variable(ENV_MONITOR, "on/off", "on",
             "the host-side monitor of each VM run; off: its checks are not judged "
             "(`ktstr test --no-monitor`)"),
    Variable(ENV_KASLR, "on/off", "on",
             "off: boot with nokaslr and, where the kernel has CONFIG_PVH, the "
             "uncompressed vmlinux (faster cold boots)"),
    Variable(ENV_HOST_KASLR, "on/off", "off",
             "on (experimental): with KASLR, where the kernel has CONFIG_PVH and its "
             "relocation table, the host relocates the vmlinux to a random offset per "
             "boot and PVH-boots it, skipping the bzImage's decompressor"),
    Variable(ENV_ACCEL, "kvm, tcg", "kvm where it runs guests, else tcg",
             "the accelerator of every VM"),
    Variable(ENV_TCG_THREADS, "single, multi",
             "single where a sched_ext scheduler may load, else multi",
             "under TCG, one host thread for all vCPUs or one per vCPU "
             "(`ktstr shell --tcg-threads`)"),
    Variable(ENV_QEMU, "a path", "qemu-system-x86_64 on PATH", "the qemu binary"),
    Variable(ENV_BUSYBOX, "a path", "/bin/busybox or /usr/bin/busybox",
             "the statically linked busybox the guest's initramfs gets"),
)


@dataclass(frozen=True, slots=True)
class Settings:
    """One field per variable; None: not set (the default is worked out where it is used,
    e.g. the accelerator by probing /dev/kvm)."""

    cache_dir: Path | None = None
    kernel: str | None = None
    run_dir: Path | None = None
    cold: bool = False
    monitor: bool = True
    kaslr: bool = True
    host_kaslr: bool = False
    accel: str | None = None  # one of ACCELS
    tcg_threads: str | None = None  # one of TCG_THREADS
    qemu: Path | None = None
    busybox: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """The settings `env` holds; ConfigError for a value a variable does not take."""
        def path(name: str) -> Path | None:
            value = env.get(name, "")
            return Path(value) if value else None

        def switch(name: str, default: bool) -> bool:
            value = env.get(name, "").strip().lower()
            return default if not value else value not in OFF

        accel = _one_of(env, ENV_ACCEL, ACCELS, "is not an accelerator; hint: use kvm or tcg")
        threads = _one_of(env, ENV_TCG_THREADS, TCG_THREADS,
                          "is not a TCG threading; hint: use single (every vCPU on one "
                          "host thread) or multi")
        return cls(cache_dir=path(ENV_CACHE_DIR), kernel=env.get(ENV_KERNEL) or None,
                   run_dir=path(ENV_RUN_DIR), cold=switch(ENV_COLD, False),
                   monitor=switch(ENV_MONITOR, True), kaslr=switch(ENV_KASLR, True),
                   host_kaslr=switch(ENV_HOST_KASLR, False),
                   accel=accel, tcg_threads=threads, qemu=path(ENV_QEMU),
                   busybox=path(ENV_BUSYBOX))


def _one_of(env: Mapping[str, str], name: str, accepted: tuple[str, ...],
            refusal: str) -> str | None:
    value = env.get(name, "").strip()
    if value and value not in accepted:
        raise ConfigError(f"{name}={value!r} {refusal}")
    return value or None


@functools.cache
def settings() -> Settings:
    """This process's settings, read from its environment at the first call."""
    return Settings.from_env(os.environ)
