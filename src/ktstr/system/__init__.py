"""System layer: the only code that touches /proc, /sys and /sys/fs/cgroup.

`fs` (one read/write policy, errno -> `SysIoError` with a hint), `cgroup`
(`CgroupFs`, cgroup v2), `cpu` (online CPUs, LLCs, NUMA nodes, SMT siblings),
`proc` (per-task schedstat, sched, last CPU), `sched_debug` (debugfs
`sched/debug`: each runqueue as the kernel prints it), `blockdev` (the VM's scratch disk
and its per-worker regions), `libc` (the C library loaded once: syscall(2)
and its numbers, prctl, `struct timespec`). Readers take a root so unit tests
point them at a fake tree.
"""
