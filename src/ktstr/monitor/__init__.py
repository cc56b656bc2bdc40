"""The host-side monitor: the guest kernel watched through its RAM, from the host.

Layers (see ../shared/DESIGN.md, "Watching the guest from the host"):
`sample` (what one look at the guest holds, the contract between the reader and
the checks), the guest-memory reader, the sampler thread, and the checks that
judge a series of samples.
"""
