"""The `ktstr` command's entry point: the signal handlers first, then the command line.

Importing the subcommands takes ~0.4 s (pytest, the monitor, the runner). SIGINT and
SIGTERM end ktstr as interrupted from the first instant (ktstr.runner.signals), so
one that comes during that start-up ends it with the shell's status for the signal
(130, 143), like one during the kernel check, not by the signal's default action.
Once the command has returned, its status stands: a signal during the interpreter's
exit is ignored.
"""

from __future__ import annotations

import sys

from ktstr.runner.signals import exit_status, stop_on_signals


def main() -> int:
    with stop_on_signals(then_ignore=True):
        try:
            from ktstr.cli.main import main as run_command
            return run_command()  # ends an interruption inside it with its own status
        except KeyboardInterrupt as e:  # during the imports, or just after the command
            return exit_status(e)


if __name__ == "__main__":
    sys.exit(main())
