"""systemd's notify protocol (READY=1, WATCHDOG=1, STOPPING=1, STATUS=...), without a library."""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send `message` to $NOTIFY_SOCKET; False when not run by systemd with Type=notify."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError:
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Half of WatchdogSec (systemd's advice), when the watchdog is on for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None
