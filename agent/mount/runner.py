"""Running a command with a time limit, capturing its output without waiting for its daemons."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and self.error is None

    def summary(self) -> str:
        """One line for logs and errors: the command, how it ended, the last line it printed."""
        cmd = " ".join(self.argv)
        if self.error:
            return f"`{cmd}` could not run: {self.error}"
        if self.timed_out:
            return f"`{cmd}` did not finish within {self.seconds:.1f} s and was killed"
        tail = (self.stderr.strip() or self.stdout.strip()).splitlines()
        last = tail[-1] if tail else ""
        return f"`{cmd}` exited {self.returncode}" + (f": {last}" if last else "")


def run(
    argv: Sequence[str],
    timeout_s: float,
    extra_env: Mapping[str, str] | None = None,
) -> CommandResult:
    """Run `argv`; output goes to temp files, so a daemon it leaves behind holding them cannot stall us.

    `extra_env` is added to this process's environment for the child only; it is never logged.
    """
    env = dict(os.environ)
    if extra_env:
        env.update(extra_env)
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, start_new_session=True
            )
        except OSError as exc:
            return CommandResult(tuple(argv), None, "", "", time.monotonic() - start, error=str(exc))
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    return CommandResult(tuple(argv), proc.returncode, stdout, stderr, seconds, timed_out)
