"""The smallest ktstr test: boot, check the topology, run an empty body, report."""

from ktstr import Ctx, ktstr_test


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=1)
def trivial(ctx: Ctx) -> None:
    return None
