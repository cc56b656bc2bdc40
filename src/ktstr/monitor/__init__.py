"""The host-side monitor: the guest kernel watched through its RAM, from the host.

Layers, bottom up:
`guestmem` (the node RAM files, guest-physical reads and writes), `vmcoreinfo`
(finding the kernel), `translate` (virtual -> physical, per-CPU), `kallsyms` and
`btf` (symbols and types from guest memory), `layout` (what is derived per kernel
BUILD-ID, cached), `guestkernel` (a booted kernel opened from the host),
`rqreader` (one `MonitorSample` per call, and the watchdog timeout read/write),
`sample` (the contract between the reader and the checks); `symtab` (every kernel
symbol, cached per BUILD-ID) and `watch` (write watchpoints through qemu's gdbstub,
`ktstr.vm.gdbstub`, and the scheduler's error exit as one).

Over those, the monitor of one run (`session.MonitorSession`): `sampling` (the
sampling thread's outcome and the watchdog override), `verdict` (the samples
judged against the test's checks), `guestaccess` (the kernel opened once for
captures and writes, and the freezes), `captures` (snapshots on request and on
watches), `schedvars` (writing the scheduler's globals).
"""
