"""`ktstr`: the command line. Each subcommand lives in its own small module.

Errors the user must act on (`KtstrError`) print as one line and exit 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ktstr.cli import (
    kernel_cmd,
    locks_cmd,
    report_cmd,
    sched_cmd,
    shell_cmd,
    snapshot_cmd,
    test_cmd,
    verifier_cmd,
)
from ktstr.errors import KtstrError
from ktstr.runner.signals import exit_status, signal_behind


class ExitCode:
    OK = 0
    FAILED = 1  # tests ran and some failed
    USAGE = 2  # bad input or a missing host requirement: the message says what to do


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ktstr", description="Test harness for Linux "
                                     "process schedulers (sched_ext and EEVDF) in VMs.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    test_cmd.register(sub)
    kernel_cmd.register(sub)
    shell_cmd.register(sub)
    sched_cmd.register(sub)
    snapshot_cmd.register(sub)
    report_cmd.register(sub)
    verifier_cmd.register(sub)
    locks_cmd.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    # `ktstr test` hands everything it does not know to pytest.
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "test":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        args.pytest_args = rest
        code: int = args.func(args)
    except KtstrError as e:
        print(f"ktstr: error: {e}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt as e:  # SIGINT, or SIGTERM where ktstr.runner.signals is on
        print(f"ktstr: interrupted by {signal_behind(e).name}", file=sys.stderr)
        return exit_status(e)
    return code


if __name__ == "__main__":
    sys.exit(main())
