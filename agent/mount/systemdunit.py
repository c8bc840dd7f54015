"""Mounting through systemd's mount unit for the agent's fstab line, so juicefs runs in that unit (not the
agent's): restarting or upgrading the agent never touches it.

The line says ro; rw comes from a runtime drop-in with the line's options, ro in place of rw, which is gone at
the next boot: a rebooted node mounts read-only, whatever it was."""

from __future__ import annotations

import dataclasses
import os
import time

from jfsmilvus.common.atomicfile import write_atomic

import agent.mount.runner as runner  # the module, not its names: a test stands in for runner.run
from agent.mount.envfile import render_mode_dropin


def start_mount_unit(
    unit_name: str, rw_dropin: str, rw_options: tuple[str, ...] | None, volume_name: str, timeout_s: float
) -> runner.CommandResult:
    """Start `unit_name` read-write (`rw_options`: the drop-in's options) or read-only (None: no drop-in)."""
    if rw_options is not None:
        changed = write_atomic(rw_dropin, render_mode_dropin(rw_options, volume_name), 0o644)
    else:
        changed = os.path.exists(rw_dropin)
        if changed:
            os.unlink(rw_dropin)
    if changed:
        res = runner.run(["systemctl", "daemon-reload"], timeout_s=30)
        if not res.ok:
            return res
    # A unit that failed to start a few times in a row is refused by systemd's start limit until reset.
    runner.run(["systemctl", "reset-failed", unit_name], timeout_s=30)
    wait_unit_inactive(unit_name)
    res = runner.run(["systemctl", "start", unit_name], timeout_s=timeout_s)
    if not res.ok and not res.timed_out:
        journal = runner.run(["journalctl", "-u", unit_name, "-n", "1", "-o", "cat", "--no-pager"], timeout_s=10)
        said = (res.stderr.strip() or res.stdout.strip()).splitlines()
        if journal.ok and journal.stdout.strip():
            # summary() shows one line: systemctl's own says only where to look.
            line = f"{said[0] if said else 'failed'}; {unit_name}: {journal.stdout.strip().splitlines()[-1]}"
            return dataclasses.replace(res, stderr=line)
    return res


def wait_unit_inactive(unit_name: str, timeout_s: float = 3.0) -> None:
    """A mount just unmounted may still be active in systemd's eyes for a moment (it reads mountinfo on its own
    time); starting it then would do nothing."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        res = runner.run(["systemctl", "show", "-p", "ActiveState", "--value", unit_name], timeout_s=10)
        if not res.ok or res.stdout.strip() not in ("active", "deactivating"):
            return
        time.sleep(0.1)
