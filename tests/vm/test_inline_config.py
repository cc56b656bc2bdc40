"""A test's inline config= reaches its scheduler: written to the declared guest path
before the start, named by the substituted config_file_def template."""

import dataclasses
import sys
from pathlib import Path

from ktstr.runner import vmrun
from ktstr.scheduler import SchedulerSpec
from ktstr.vm.kernel import resolve_kernel
from ktstr.vm.sched import find_scheduler_binary
from tests.vm import config_bodies

WRAPPER = """#!/bin/sh
mkdir -p {record}
printf '%s\\n' "$@" > {record}/argv
for arg in "$@"; do
  case "$arg" in --config=*) cp "${{arg#--config=}}" {record}/config ;; esac
done
exec {target}
"""


def test_inline_config_is_written_and_passed_through_the_template(tmp_path, request):
    spec = request.config.getoption("ktstr_kernel", None)
    target = find_scheduler_binary(SchedulerSpec.discover("scx_simple"), resolve_kernel(spec))
    wrapper = tmp_path / "scx_simple_wrapped"
    wrapper.write_text(WRAPPER.format(record=config_bodies.RECORD, target=target))
    wrapper.chmod(0o755)
    name = "inline_config_reaches_the_scheduler"
    body = getattr(config_bodies, name)
    sched = dataclasses.replace(body.scheduler, binary=SchedulerSpec.path(str(wrapper)))
    test = dataclasses.replace(body, scheduler=sched)
    where = vmrun.TestLocation(test_id=f"{config_bodies.__name__}::{name}",
                         module_file=config_bodies.__file__, module_name=config_bodies.__name__,
                         qualname=name, sys_path=tuple(sys.path), cwd=str(Path.cwd()))
    r = vmrun.run_in_vm(test, where, kernel_spec=spec, run_dir=tmp_path / "run")
    assert r.passed, (r.outcome, r.error, r.traceback, r.scheduler_run)
    run = r.scheduler_run
    assert run is not None
    assert run.argv == [str(wrapper), f"--config={config_bodies.GUEST_PATH}"], run.argv
    assert run.ops == "simple" and run.end == "clean", run
