"""Guest PID 1: mount, fork the agent, reap every orphan until it ends, power off.

The agent runs in a child so that PID 1 can reap whatever is reparented to it
(waitpid(-1) in the agent itself would steal the exit statuses of its own
workers). Whatever happens, the guest powers off, so qemu exits.
"""

from __future__ import annotations

import os
import socket
import sys
import traceback

from ktstr.guest import init


def main() -> None:
    try:
        init.mount_all()
        init.hold_static_keys()
        socket.sethostname("ktstr")  # what a shell prompt shows instead of "(none)"
        agent = os.fork()
        if agent == 0:
            code = 1
            try:
                from ktstr.guest.agent import run_agent

                code = run_agent()
            except BaseException:
                init.kmsg("agent crashed:\n" + traceback.format_exc())
            finally:
                os._exit(code)
        while True:
            pid, _status = os.waitpid(-1, 0)
            if pid == agent:
                break
    except BaseException:
        init.kmsg("init failed:\n" + traceback.format_exc())
        traceback.print_exc(file=sys.stderr)
    finally:
        init.power_off()


if __name__ == "__main__":
    main()
