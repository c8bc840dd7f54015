"""The juicefs processes that serve a mount, found and killed without touching the mount itself.

A hung mount blocks every `stat` of it, so the processes are found from /proc alone: juicefs rewrites its
argv into one space-joined line (hiding the META-URL's password), which holds the mountpoint. Killing
them (the background supervisor and the client it runs) turns the mount ENOTCONN at once: every request stuck
in it fails, and the mount can be lazily unmounted and mounted again.
"""

from __future__ import annotations

import os
import signal


def juicefs_pids(mountpoint: str, proc: str = "/proc") -> list[int]:
    """Live juicefs processes whose command line names `mountpoint` as a word."""
    target = os.path.normpath(mountpoint)
    found = []
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "cmdline"), "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
            with open(os.path.join(proc, entry, "stat"), "rb") as f:  # its comm may be any bytes
                state = f.read().rsplit(b")", 1)[1].split()[0].decode("ascii", "replace")
        except (OSError, IndexError):
            continue
        if state == "Z" or not argv:
            continue
        # A mountpoint may hold spaces: match it whole, between spaces, in the joined line.
        joined = " ".join(argv)
        program = os.path.basename(joined.split(" ", 1)[0])
        if "juicefs" in program and f" {target} " in f" {joined} ":
            found.append(int(entry))
    return sorted(found)


def kill_juicefs(mountpoint: str) -> list[int]:
    """SIGKILL every juicefs process serving `mountpoint` (a stopped one dies too); the pids killed."""
    killed = []
    for pid in juicefs_pids(mountpoint):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        killed.append(pid)
    return killed
