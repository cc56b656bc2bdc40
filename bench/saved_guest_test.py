"""saved_guest_cost.py's test: trivial, with a memory size of its own so that its saved
guest is the bench's alone (the guest imports this module: keep it light)."""

from ktstr import Ctx, ktstr_test


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=1, memory_mb=1800)
def saved_guest_trivial(ctx: Ctx) -> None:
    return None
