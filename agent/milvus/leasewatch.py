"""Self-fencing that outlives the agent: a rw container SIGKILLs Milvus when its lease file says the lease is gone.

The agent writes `<conf dir>/lease` (seen in the container as /var/lib/milvus/conf/lease) at every renewal:

    DEADLINE_CS BOOT_ID EPOCH LEASE_MS ROW_LEASE_MS

DEADLINE_CS is the lease deadline on CLOCK_BOOTTIME in centiseconds (the clock of /proc/uptime, which a
container shares with the host), moved `WRAPPER_EARLY_S` earlier so that the wrapper's polling never lets
Milvus outlive the lease. BOOT_ID (/proc/sys/kernel/random/boot_id) makes a file from an earlier boot, whose
clock started again from zero, count as lapsed.

A rw container runs `/bin/sh /jfs-milvus/leasewatch IMAGE-ENTRYPOINT... IMAGE-CMD...`: the script below
(POSIX sh, shell builtins plus `sleep`) starts the image's own command as its child, forwards SIGTERM and
SIGINT to it as SIGINT (the container's stop signal is SIGINT; Milvus 1.x flushes and exits 0 on SIGINT, while
SIGTERM is a "critical signal" to it: stack trace, exit 1, utils/SignalUtil.cpp), and every 200 ms compares the
file with /proc/uptime. A POSIX shell starts a background child with SIGINT ignored; a program that installs
its own SIGINT handler (Milvus does, main.cpp; so does any Python `signal.signal(SIGINT, ...)`) still gets it.
When the deadline has passed, or the file is missing, unreadable or from another boot, it SIGKILLs the child
and exits with LEASE_EXPIRED_EXIT; leaving PID 1 makes the kernel kill whatever else runs in the container.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass

from jfsmilvus.common.atomicfile import write_atomic

CONTAINER_LEASEWATCH = "/jfs-milvus/leasewatch"
LEASE_FILE_NAME = "lease"
LEASE_EXPIRED_EXIT = 75
WRAPPER_POLL_S = 0.2
WRAPPER_EARLY_S = 0.3  # > one poll, so the kill lands before the lease's own end
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"

LEASEWATCH_SH = f"""\
# jfs-milvus leasewatch (written by jfs-milvus-agent): run Milvus as a child and SIGKILL it once the writer's
# lease has lapsed, even when the agent is dead or hung. Lease file: "DEADLINE_CS BOOT_ID EPOCH LEASE_MS",
# DEADLINE_CS on the clock of /proc/uptime in centiseconds.
lease_file="${{JFS_MILVUS_LEASE_FILE:-/var/lib/milvus/conf/{LEASE_FILE_NAME}}}"
read -r boot < {BOOT_ID_PATH}
child= stop=
trap 'stop=1; [ -n "$child" ] && kill -INT "$child" 2>/dev/null' TERM INT
"$@" &
child=$!
[ -n "$stop" ] && kill -INT "$child" 2>/dev/null  # a stop that came before the child existed
while :; do
  if ! kill -0 "$child" 2>/dev/null; then
    wait "$child"
    exit $?
  fi
  deadline= file_boot=
  {{ read -r deadline file_boot rest < "$lease_file"; }} 2>/dev/null
  read -r up idle < /proc/uptime
  now="${{up%.*}}${{up#*.}}"
  case "$deadline" in
    ''|*[!0-9]*) why="no readable lease file $lease_file" ;;
    *)
      if [ "$file_boot" != "$boot" ]; then
        why="the lease file is from another boot"
      elif [ "$now" -ge "$deadline" ]; then
        ago=$((now - deadline))
        why=$(printf 'lease expired %d.%02ds ago' $((ago / 100)) $((ago % 100)))
      else
        why=
      fi
      ;;
  esac
  if [ -n "$why" ]; then
    kill -KILL "$child" 2>/dev/null
    echo "leasewatch: $why; killed the rw container" >&2
    exit {LEASE_EXPIRED_EXIT}
  fi
  sleep {WRAPPER_POLL_S}
done
"""


def boot_id() -> str:
    with open(BOOT_ID_PATH, encoding="ascii") as f:
        return f.read().strip()


@dataclass(frozen=True)
class LeaseFile:
    deadline: float  # as the agent holds it (CLOCK_BOOTTIME seconds), before WRAPPER_EARLY_S
    epoch: int
    lease_ms: int
    row_lease_ms: int = 0  # what a MySQL row read renews it for (agent.lease.Lease); 0: lease_ms


def render_lease_file(lease: LeaseFile, boot: str) -> str:
    deadline_cs = int((lease.deadline - WRAPPER_EARLY_S) * 100)
    return f"{max(0, deadline_cs)} {boot} {lease.epoch} {lease.lease_ms} {lease.row_lease_ms}\n"


def parse_lease_file(text: str, boot: str) -> LeaseFile | None:
    """The lease in the file, or None when it is unreadable or from another boot. The deadline read back is the
    wrapper's (early) one: an agent that restarts trusts no more than the wrapper does. A file of four fields
    (an older agent's) renews from the row for its whole lease, as that agent did."""
    fields = text.split()
    if len(fields) not in (4, 5) or fields[1] != boot or not all(f.isdigit() for f in fields[:1] + fields[2:]):
        return None
    return LeaseFile(
        deadline=int(fields[0]) / 100.0,
        epoch=int(fields[2]),
        lease_ms=int(fields[3]),
        row_lease_ms=int(fields[4]) if len(fields) == 5 else 0,
    )


def write_lease_file(path: str, lease: LeaseFile) -> None:
    """Replace the lease file atomically (rename), so the wrapper reads the old deadline or the new, never half.

    No fsync: after a crash of the machine no container survives to read it, and the boot id changes."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".lease.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(render_lease_file(lease, boot_id()))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_lease_file(path: str) -> LeaseFile | None:
    try:
        with open(path, encoding="ascii") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return None
    return parse_lease_file(text, boot_id())


def install_wrapper(path: str) -> None:
    write_atomic(path, LEASEWATCH_SH, mode=0o644)


def wrapped_command(entrypoint: list[str] | None, cmd: list[str] | None) -> list[str]:
    """The image's own command line (entrypoint + cmd), as the wrapper's arguments."""
    command = list(entrypoint or []) + list(cmd or [])
    if not command:
        raise ValueError("the image names neither an entrypoint nor a command to run under the lease wrapper")
    return command
