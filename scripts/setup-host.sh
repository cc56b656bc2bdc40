#!/bin/sh
# Install the Debian packages ktstr needs, only those missing. Run as root.
# apt-get update runs first whenever something must be installed: on a fresh
# machine the package lists are empty.
set -eu
# gcc and python3-dev: `make venv` compiles ktstr._native, schbench's matrix multiply
# in C (setup.py);
# VM path: qemu, a static busybox for the initramfs, kmod; Python's venv module;
# the kernel's example sched_ext schedulers: clang/llvm/lld 19, libelf, zlib, make
# (their BPF objects are compiled by zig's clang, from the PyPI ziglang wheel that
# pyproject.toml lists: clang-19 miscompiles scx_qmap's arena code);
# rt-tests: cyclictest, the wake-latency reference bench/worker_fidelity.py compares to;
# stress-ng and fio: the ready-made payloads of ktstr.payloads (STRESS_NG, FIO).
PACKAGES="gcc python3-dev qemu-system-x86 busybox-static kmod python3-venv \
clang-19 llvm-19 lld-19 libelf-dev zlib1g-dev make rt-tests stress-ng fio"
missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        *" installed") ;;
        *) missing="$missing $p" ;;
    esac
done
if [ -z "$missing" ]; then
    echo "setup-host: all packages present ($PACKAGES)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "setup-host: missing packages:$missing; run as root or: sudo apt-get install$missing" >&2
    exit 1
fi
echo "setup-host: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends $missing
