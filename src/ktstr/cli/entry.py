"""The `ktstr` command's entry point: the signal handlers first, then the command line.

Importing the subcommands takes ~0.4 s (pytest, the monitor, the runner). SIGINT and
SIGTERM end ktstr as interrupted from the first instant (ktstr.runner.signals), so
one that comes during that start-up ends it with the shell's status for the signal
(130, 143), like one during the kernel check, not by the signal's default action.
"""

from __future__ import annotations

import sys

from ktstr.runner.signals import exit_status, stop_on_signals


def main() -> int:
    with stop_on_signals():
        try:
            from ktstr.cli.main import main as run_command
        except KeyboardInterrupt as e:
            return exit_status(e)
        return run_command()


if __name__ == "__main__":
    sys.exit(main())
