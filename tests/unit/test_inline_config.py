"""config_file_def and a test's inline config=: the pairing rules, checked at
declaration/decoration, and what the guest's orders become."""

import json
import os
from pathlib import Path

import pytest

from ktstr.errors import ConfigError
from ktstr.guest.schedctl import ManagedScheduler, SchedulerFailed, SchedulerOrder
from ktstr.runner.schedorder import resolve_schedulers
from ktstr.scheduler import Scheduler, SchedulerSpec
from ktstr.testdef import ktstr_test
from ktstr.vm.kernel import Kernel

SEAM = ("--config={file}", "/include-files/my.json")


def body(ctx):
    return None


def wrapped(tmp_path: Path, **fields) -> Scheduler:
    exe = tmp_path / "scx_wrapped"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    return Scheduler("wrapped", binary=SchedulerSpec.path(str(exe)), **fields)


KERNEL = Kernel(key="k", version="7.2.13", image=Path("/k/vmlinuz"), config=None,
                modules_dir=None, vmlinux=None)


def test_config_file_and_config_file_def_together_are_rejected():
    with pytest.raises(ConfigError, match="config_file and config_file_def are alternatives"):
        Scheduler("s", config_file="cfg.toml", config_file_def=SEAM)


def test_a_template_without_the_file_placeholder_is_rejected():
    with pytest.raises(ConfigError, match=r"template '--config' has no \{file\}"):
        Scheduler("s", config_file_def=("--config", "/x.json"))


@pytest.mark.parametrize("guest_path", ["include/my.json", "/", "/etc/", "/a/../etc/passwd", ""])
def test_a_guest_path_that_is_not_an_absolute_file_path_is_rejected(guest_path):
    with pytest.raises(ConfigError, match="is not an absolute file path"):
        Scheduler("s", config_file_def=("--config={file}", guest_path))


@pytest.mark.parametrize("value", [("--config={file}",), "--config={file}",
                                   ("--config={file}", 3), ("a", "b", "c")])
def test_config_file_def_must_be_a_pair_of_strings(value):
    with pytest.raises(ConfigError, match=r"is not an \(arg_template, guest_path\) pair"):
        Scheduler("s", config_file_def=value)


def test_config_file_def_on_a_scheduler_without_a_binary_is_rejected():
    with pytest.raises(ConfigError, match="kernel_builtin has none"):
        Scheduler("s", binary=SchedulerSpec.kernel_builtin(["true"]), config_file_def=SEAM)


def test_a_list_seam_becomes_a_tuple():
    assert Scheduler("s", config_file_def=list(SEAM)).config_file_def == SEAM


def test_config_without_a_seam_is_rejected_at_decoration():
    with pytest.raises(ConfigError, match=r"@ktstr_test on body: config= is given but "
                       r"scheduler scx_simple has no config_file_def"):
        ktstr_test(scheduler=Scheduler("scx_simple"), config={"a": 1})(body)
    with pytest.raises(ConfigError, match="scheduler eevdf has no config_file_def"):
        ktstr_test(config="x")(body)


def test_a_seam_without_config_is_rejected_at_decoration():
    with pytest.raises(ConfigError, match=r"takes its config inline .* and the test gives none"):
        ktstr_test(scheduler=Scheduler("s", config_file_def=SEAM))(body)


def test_a_dict_config_is_written_as_json_and_a_str_as_is():
    sched = Scheduler("s", config_file_def=SEAM)
    t = ktstr_test(scheduler=sched, config={"layers": [{"name": "a", "weight": 2}]})(body)
    assert json.loads(t.config) == {"layers": [{"name": "a", "weight": 2}]}
    assert ktstr_test(scheduler=sched, config="k = 1\n")(body).config == "k = 1\n"


@pytest.mark.parametrize("value, message", [(3, "is a int"), ({"a": {1, 2}}, "not JSON")])
def test_other_config_values_are_rejected(value, message):
    with pytest.raises(ConfigError, match=message):
        ktstr_test(scheduler=Scheduler("s", config_file_def=SEAM), config=value)(body)


def test_the_substituted_template_goes_first_and_the_content_travels_in_the_orders(tmp_path):
    sched = wrapped(tmp_path, config_file_def=SEAM, sched_args=("--slice", "5"),
                    cgroup_parent="/cells")
    t = ktstr_test(scheduler=sched, config={"x": 1}, extra_sched_args=["-v"])(body)
    order = resolve_schedulers(t, KERNEL, "tcg").own
    assert order is not None
    assert order.argv[1:] == ["--config=/include-files/my.json", "--slice", "5",
                              "--cell-parent-cgroup", "/cells", "-v"]
    assert order.files == [("/include-files/my.json", '{"x": 1}')]


def test_a_template_of_two_words_gives_two_arguments(tmp_path):
    sched = wrapped(tmp_path, config_file_def=("--config {file}", "/run/c.json"))
    t = ktstr_test(scheduler=sched, config="{}")(body)
    order = resolve_schedulers(t, KERNEL, "tcg").own
    assert order is not None and order.argv[1:] == ["--config", "/run/c.json"]


def test_the_orders_survive_the_json_round_trip(tmp_path):
    sched = wrapped(tmp_path, config_file_def=SEAM)
    t = ktstr_test(scheduler=sched, config="{}")(body)
    order = resolve_schedulers(t, KERNEL, "tcg").own
    assert order is not None
    back = SchedulerOrder.from_dict(json.loads(json.dumps(order.to_dict())))
    assert back.files == [("/include-files/my.json", "{}")]


@pytest.mark.skipif(not os.access("/dev/kmsg", os.R_OK), reason="reads /dev/kmsg (root)")
def test_the_guest_writes_the_files_before_the_scheduler_starts(tmp_path):

    target = tmp_path / "deep" / "conf.json"
    record = tmp_path / "seen"
    # A "scheduler" that records what it found at its start, then exits: start() then
    # fails as never attached (no sched_ext here), after the file was written.
    order = SchedulerOrder(name="rec", argv=["/bin/sh", "-c", f"cat {target} > {record}"],
                           files=[(str(target), '{"a": 1}')], attach_timeout_s=2.0)
    sched = ManagedScheduler(order, log_dir=tmp_path)
    with pytest.raises(SchedulerFailed):
        sched.start()
    assert record.read_text() == '{"a": 1}'
