"""Who owns a running trial: ``host:pid:start-time`` of the worker process, and whether that
process is provably gone (see ``storage``: an orphan is failed at once)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

OWNER = "worker"  # the user attr naming a trial's owner, host:pid:start-time


def _start_time(pid: int) -> str | None:
    """The kernel's start time of process ``pid`` (clock ticks since boot), None if it is gone.

    With the pid it names one process for good: a recycled pid has another start time. Without
    /proc (not Linux) it is "-" for any live pid: only the pid is compared then.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        if Path("/proc/self/stat").exists():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "-"
    return stat.rpartition(")")[2].split()[19]  # field 22 of proc(5); the name may hold spaces


def worker_id() -> str:
    """``host:pid:start-time`` of this process."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def owner_gone(owner: str | None) -> bool:
    """Whether a trial's owner is provably gone: none at all, or a dead process of this host.

    An owner on another host cannot be checked here (a database's heartbeat does that).
    """
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    now = _start_time(int(pid))
    return now is None or (started not in ("", "-") and now != started)
