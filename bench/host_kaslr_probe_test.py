"""A test that reports where the guest's kernel text is, by failing with it
(bench/host_kaslr_soak.py reads the message)."""

from ktstr import Ctx, ktstr_test


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=1)
def probe(ctx: Ctx) -> None:
    with open("/proc/kallsyms") as f:
        text = next(line.split()[0] for line in f if line.rstrip().endswith(" _text"))
    raise AssertionError(f"PROBE _text={text}")
