"""The agent's JuiceFS mount: its fstab line and password plumbing, its health, and its mode.

`MountManager(volume, settings, node_name)`:
  configure() -> actions   mount helper, env file (0600), fstab entry; idempotent
  observe()   -> MountStatus   never raises, never blocks longer than settings.probe_timeout_s
  ensure(mode) -> actions  mount, recover a dead (ENOTCONN) mount, or remount in the other mode;
                           raises MountError when it cannot (hung mount, busy unmount, mount failure)
  kill_hung() -> actions   kill the juicefs processes of a hung mount, which turns it ENOTCONN

Every mount goes through the fstab line and its type's helper (agent/mounthelper.py), which gives juicefs
the password from the env file: `mount DIR` by hand, `mount -a`, systemd at boot and the agent mount the same
way. Where systemd runs, the agent starts the line's mount unit, so juicefs lives in that unit and restarting
or upgrading the agent never touches it; elsewhere (containers, tests) it runs `mount -T FSTAB` itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
import sys
import time
from typing import Any

from jfsmilvus.common.atomicfile import line_not_utf8, read_text, write_atomic
from jfsmilvus.common.secrets import SecretError

from agent import mounthelper
from agent.config import JuicefsSettings, VolumeSettings
from agent.mount import envfile, fstab, fusedaemon, health, mountinfo, probes, redischeck, runner, systemdunit
from agent.mount.health import MetaObservation, Observations, WriteProbeResult, write_probe_due
from agent.mount.status import Mode, MountStatus, cache_dir_writable
from agent.mount.unitname import mount_unit_name

log = logging.getLogger("jfs_milvus.agent.mount")

# The drop-in agents before the mount helper wrote into juicefs.systemd_dir (EnvironmentFile=); removed.
DROPIN_NAME = "jfs-milvus.conf"
# Where systemd reads runtime units and drop-ins; the read-write mode of a writer's mount lives there.
RUNTIME_UNIT_DIR = "/run/systemd/system"
MODE_DROPIN_NAME = "jfs-milvus-mode.conf"
SYSTEMD_FSTAB = "/etc/fstab"
# The `agent` package's folder: the mount helper the agent writes runs the same code.
CODE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(mounthelper.__file__)))
DEFAULT_MOUNT_TIMEOUT_S = 60.0
DEFAULT_UMOUNT_TIMEOUT_S = 30.0

__all__ = ["MountError", "MountManager", "MountStatus"]


class MountError(Exception):
    """The mount could not be brought to the wanted state; the message says why (never a secret)."""


def _safe_name(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", value) or "node"


class MountManager:
    def __init__(
        self,
        volume: VolumeSettings,
        settings: JuicefsSettings,
        node_name: str,
        mount_timeout_s: float = DEFAULT_MOUNT_TIMEOUT_S,
    ):
        self.volume = volume
        self.settings = settings
        self.node_name = node_name
        self.mountpoint = os.path.normpath(volume.mountpoint)
        self.mount_timeout_s = mount_timeout_s
        self._fs_probe = probes.BoundedProbe(f"fs-{volume.name}")
        self._meta_probe = probes.BoundedProbe(f"meta-{volume.name}")
        self._redis_check = redischeck.RedisEngineCheck(volume.meta_url)
        self._last_write: WriteProbeResult | None = None
        self._said_not_utf8: set[str] = set()

    # -- paths ---------------------------------------------------------------------------------------
    @property
    def env_file(self) -> str:
        return os.path.join(self.settings.secrets_dir, f"juicefs-{_safe_name(self.volume.name)}.env")

    @property
    def unit_name(self) -> str:
        return mount_unit_name(self.mountpoint)

    @property
    def dropin_file(self) -> str:
        """The password drop-in of agents before the mount helper; configure() removes it."""
        return os.path.join(self.settings.systemd_dir, f"{self.unit_name}.d", DROPIN_NAME)

    @property
    def mode_dropin_file(self) -> str:
        return os.path.join(RUNTIME_UNIT_DIR, f"{self.unit_name}.d", MODE_DROPIN_NAME)

    @property
    def fstype(self) -> str:
        """The fstab type of the agent's line: TYPE of the helper /sbin/mount.TYPE, a juicefs-* one."""
        try:
            fstype = mounthelper.fstype_of(self.settings.mount_helper)
        except ValueError as exc:
            raise MountError(str(exc)) from None
        if not fstype.startswith("juicefs-"):
            raise MountError(
                f"{self.settings.mount_helper}: the agent's mount helper is named mount.juicefs-NAME "
                f"(default {mounthelper.HELPER_NAME}); mount.juicefs is JuiceFS's own"
            )
        return fstype

    def _juicefs(self) -> str:
        """The configured juicefs as an absolute path (the config resolves it; a name not found stays a name,
        and the helper says it is no executable)."""
        binary = self.settings.binary
        return binary if os.path.isabs(binary) else shutil.which(binary) or binary

    def wanted_entry(self) -> fstab.FstabEntry:
        """The agent's fstab line for this volume: its helper's type, the env file when there is a password."""
        env_file = self.env_file if self.volume.password is not None else None
        return fstab.entry_for_volume(self.volume, self.fstype, env_file, self._juicefs())

    def _systemd_mounts(self) -> bool:
        """systemd runs and reads the agent's fstab: mounts go through the line's mount unit."""
        return (
            os.path.isdir(RUNTIME_UNIT_DIR)
            and shutil.which("systemctl") is not None
            and os.path.realpath(self.settings.fstab) == SYSTEMD_FSTAB
        )

    # -- configure -----------------------------------------------------------------------------------
    def configure(self) -> list[str]:
        """Make the helper, the env file and fstab what they should be; say what changed.

        The env file is written before the fstab line that names it, and removed after the line no longer does.
        """
        actions: list[str] = []
        try:
            self._configure_helper(actions)
            self._write_env_file(actions)
            self._configure_fstab(actions)
            self._remove_stale_files(actions)
        except (OSError, ValueError, SecretError) as exc:
            raise MountError(f"cannot configure volume {self.volume.name}: {exc}") from exc
        if actions and os.path.isdir(RUNTIME_UNIT_DIR) and shutil.which("systemctl"):
            res = runner.run(["systemctl", "daemon-reload"], timeout_s=30)
            if res.ok:
                self._act(actions, "ran systemctl daemon-reload so systemd sees the new mount settings")
            else:
                log.warning("systemctl daemon-reload failed: %s", res.summary())
        return actions

    def _act(self, actions: list[str], sentence: str, level: int = logging.INFO) -> None:
        log.log(level, "%s", sentence)
        actions.append(sentence)

    def _configure_fstab(self, actions: list[str]) -> None:
        path = self.settings.fstab
        entry = self.wanted_entry()
        # The system's file: a line of another mount may hold any bytes (a path is bytes); they are kept as they are.
        text = read_text(path, errors="surrogateescape")
        self._say_not_utf8(path, text)
        new_text, change = fstab.apply_entry(text or "", entry)
        if change is None:
            return
        mode = stat.S_IMODE(os.stat(path).st_mode) if text is not None else 0o644
        write_atomic(path, new_text, mode, errors="surrogateescape")
        hand_edit = not change.startswith("added")
        why = "edited by hand, or written by an older agent or config" if hand_edit else "the volume had no entry"
        self._act(
            actions,
            f"fstab {path}: {change} (because {why})",
            logging.WARNING if hand_edit else logging.INFO,
        )

    def _say_not_utf8(self, path: str, text: str | None) -> None:
        """Once per agent process: the file holds bytes that are not UTF-8, kept byte for byte."""
        line = line_not_utf8(text) if text is not None and path not in self._said_not_utf8 else None
        if line is not None:
            self._said_not_utf8.add(path)
            log.warning("%s: line %d holds bytes that are not UTF-8; the agent keeps them byte for byte", path, line)

    def _configure_helper(self, actions: list[str]) -> None:
        """The helper mount(8) runs for the line's type: the agent package ships it; an agent run from elsewhere
        (a source tree) writes its own, for its own Python and code. The same text either way, so an agent of
        the package finds the package's file as it should be and never rewrites it."""
        helper = self.settings.mount_helper
        wanted = mounthelper.launcher_text(sys.executable, CODE_DIR, os.path.basename(helper))
        existed = os.path.lexists(helper)
        if os.path.islink(helper):
            os.unlink(helper)  # a link (to juicefs, as agents before the helper made) is replaced, not followed
        if write_atomic(helper, wanted, 0o755):
            was = "it differed" if existed else "it was missing"
            self._act(
                actions,
                f"wrote mount helper {helper} ({was}): mount(8) runs it for fstab type {self.fstype}; it gives "
                f"{self._juicefs()} the password from the env file",
            )

    def _write_env_file(self, actions: list[str]) -> None:
        if self.volume.password is None:
            return
        secret = self.volume.password.load()
        env = {name: secret.reveal() for name in envfile.password_variables(self.volume.meta_url)}
        os.makedirs(self.settings.secrets_dir, mode=0o700, exist_ok=True)
        if write_atomic(self.env_file, envfile.render_env_file(env), 0o600):
            self._act(
                actions,
                f"wrote {self.env_file} (mode 0600) with {', '.join(env)} for volume {self.volume.name}'s "
                "metadata engine (the mount helper reads it: the password stays out of fstab)",
            )

    def _remove_stale_files(self, actions: list[str]) -> None:
        if self.volume.password is None and os.path.exists(self.env_file):
            os.unlink(self.env_file)
            self._act(actions, f"removed {self.env_file} (volume {self.volume.name} has no password now)")
        if os.path.exists(self.dropin_file):
            os.unlink(self.dropin_file)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(self.dropin_file))
            self._act(
                actions, f"removed {self.dropin_file}: the mount helper gives juicefs the password, on every path"
            )

    # -- observe -------------------------------------------------------------------------------------
    def _configured_in_fstab(self) -> bool:
        try:
            text = read_text(self.settings.fstab, errors="surrogateescape") or ""
        except OSError:
            return False
        wanted = self.wanted_entry()
        return any(e == wanted for e in fstab.parse(text))

    def _current_mount(self) -> mountinfo.MountInfo | None:
        return mountinfo.find_in_text(probes.read_mountinfo(), self.mountpoint)

    def _start_meta_probe(self) -> probes.Pending | None:
        if self.volume.meta_scheme not in redischeck.REDIS_SCHEMES:
            return None
        timeout = self.settings.probe_timeout_s

        def probe(p: probes.Progress) -> None:
            p.step = "checking the Redis metadata engine"
            password = None
            if self.volume.password is not None:
                password = self.volume.password.load().reveal()
            p.values["meta"] = self._redis_check.check(password, timeout * 0.8)

        return self._meta_probe.start(probe)

    def _probe_fs(self, write: bool, deadline: float) -> probes.ProbeOutcome:
        name = f"probe-{_safe_name(self.node_name)}" if write else None
        return self._fs_probe.start(probes.fs_probe(self.mountpoint, name)).wait(deadline)

    def observe(self) -> MountStatus:
        """What the mount is now; bounded by settings.probe_timeout_s, and never raises."""
        try:
            return self._observe()
        except Exception as exc:
            log.exception("observing volume %s failed", self.volume.name)
            return MountStatus(
                volume=self.volume.name,
                mountpoint=self.mountpoint,
                configured_in_fstab=False,
                mounted=False,
                mode=None,
                state="failed",
                reasons=(f"the observation itself failed: {type(exc).__name__}: {exc}",),
            )

    def _observe(self) -> MountStatus:
        deadline = time.monotonic() + self.settings.probe_timeout_s
        meta_pending = self._start_meta_probe()
        configured = self._configured_in_fstab()
        current = self._current_mount()
        outcome, values, fields = self._probe_current(current, deadline)
        meta = self._meta_result(meta_pending, deadline)
        obs = Observations(
            mountpoint=self.mountpoint,
            volume_name=self.volume.name,
            not_connected=bool(values.get("not_connected")),
            config_read=bool(values.get("config_read")),
            read_only=values.get("read_only"),  # type: ignore[arg-type]
            write_probe_ms=values.get("write_ms"),  # type: ignore[arg-type]
            write_probe_error=values.get("write_error"),  # type: ignore[arg-type]
            write_limit_ms=self.settings.write_probe_limit_ms,
            meta=meta,
            **fields,
        )
        state, reasons = health.classify(obs)
        mode: Mode | None = None
        if obs.config_read and obs.read_only is not None:
            mode = "ro" if obs.read_only else "rw"
        sid = values.get("session_id")
        return MountStatus(
            volume=self.volume.name,
            mountpoint=self.mountpoint,
            configured_in_fstab=configured,
            mounted=obs.mounted,
            mode=mode,
            state=state,
            reasons=tuple(reasons),
            write_probe_ms=obs.write_probe_ms,
            session_id=sid if isinstance(sid, int) else None,
            hung_since=obs.hung_since,
            hung_for_s=outcome.hung_for_s if outcome is not None else None,
            not_connected=obs.not_connected,
            meta_engine=meta,
            cache_dir_writable=cache_dir_writable(self.volume.cache_dir),
            device=current.device if current is not None and mountinfo.is_juicefs(current, self.volume.name) else None,
        )

    def _probe_current(
        self, current: mountinfo.MountInfo | None, deadline: float
    ) -> tuple[probes.ProbeOutcome | None, dict[str, object], dict[str, Any]]:
        """Probe the mount at the mountpoint when it is this volume's (writing when a write probe is due): the
        probe's outcome, its values, and the Observations fields it settles."""
        fields: dict[str, Any] = {}
        if current is None:
            return None, {}, fields
        fields.update(mounted=True, fstype=current.fstype, source=current.source)
        if not mountinfo.is_juicefs(current, self.volume.name):
            return None, {}, fields
        settings = self.settings
        write = write_probe_due(
            self._last_write,
            current.mount_id,
            time.monotonic(),
            settings.write_probe_interval_s,
            settings.write_probe_limit_ms,
        )
        outcome = self._probe_fs(write=write, deadline=deadline)
        values = self._with_last_write(outcome, current.mount_id, write)
        if outcome.hung_since is not None:
            fields.update(hung_since=outcome.hung_since, hung_during=outcome.progress.step)
        elif outcome.progress.error is not None:
            fields["probe_error"] = outcome.progress.error
        return outcome, values, fields

    def _meta_result(self, pending: probes.Pending | None, deadline: float) -> MetaObservation:
        """What the metadata engine's check found by `deadline` (not checked: an empty observation)."""
        if pending is None:
            return MetaObservation()
        outcome = pending.wait(deadline)
        if outcome.hung_since is not None:
            return MetaObservation(
                reachable=False,
                error=f"the check did not answer within {self.settings.probe_timeout_s:g} s "
                f"(stuck since {outcome.hung_since})",
            )
        if outcome.progress.error is not None:
            return MetaObservation(reachable=False, error=outcome.progress.error)
        found = outcome.progress.values.get("meta")
        return found if isinstance(found, MetaObservation) else MetaObservation()

    def _with_last_write(self, outcome: probes.ProbeOutcome, mount_id: int, wrote: bool) -> dict[str, object]:
        """The probe's values; a probe that did not write carries the last write's result on the same rw mount."""
        values = dict(outcome.progress.values)
        if not outcome.finished or outcome.progress.error is not None or values.get("not_connected"):
            self._last_write = None  # write again as soon as the mount answers
            return values
        if values.get("read_only") is not False:
            self._last_write = None
            return values
        if wrote:
            write_ms, write_error = values.get("write_ms"), values.get("write_error")
            self._last_write = WriteProbeResult(
                mount_id=mount_id,
                at=time.monotonic(),
                write_ms=write_ms if isinstance(write_ms, float) else None,
                write_error=write_error if isinstance(write_error, str) else None,
            )
        elif self._last_write is not None:
            if self._last_write.write_ms is not None:
                values["write_ms"] = self._last_write.write_ms
            if self._last_write.write_error is not None:
                values["write_error"] = self._last_write.write_error
        return values

    # -- ensure --------------------------------------------------------------------------------------
    def ensure(self, mode: Mode) -> list[str]:
        """Bring the mount to `mode` ('ro' or 'rw'); return the actions taken, raise MountError if it cannot."""
        if mode not in ("ro", "rw"):
            raise ValueError(f"mode must be 'ro' or 'rw', not {mode!r}")
        actions = self.configure()
        current = self._current_mount()
        why = "it was not mounted"
        if current is not None:
            if not mountinfo.is_juicefs(current, self.volume.name):
                raise MountError(
                    f"{self.mountpoint} holds {current.fstype} from {current.source}, not volume "
                    f"{self.volume.name}; leaving it alone"
                )
            outcome = self._probe_fs(write=False, deadline=time.monotonic() + self.settings.probe_timeout_s)
            values = outcome.progress.values
            if outcome.hung_since is not None:
                raise MountError(
                    f"{self.mountpoint} hung since {outcome.hung_since} ({outcome.progress.step}); "
                    "not touching a hung mount"
                )
            if values.get("not_connected"):
                self._unmount(lazy=True, actions=actions, why="its juicefs process is gone (ENOTCONN)")
                why = "the previous mount had died"
            elif outcome.progress.error is not None or not values.get("config_read"):
                raise MountError(f"{self.mountpoint} does not answer: {outcome.progress.error}")
            else:
                have: Mode = "ro" if values.get("read_only") else "rw"
                if have == mode:
                    return actions
                self._unmount(lazy=False, actions=actions, why=f"switching it from {have} to {mode}")
                why = f"the node's role needs it {mode}"
        self._mount(mode, actions, why)
        return actions

    def kill_hung(self) -> list[str]:
        """Kill the juicefs processes of a hung mount (found from /proc, the mount is not touched): the mount
        turns ENOTCONN, every request stuck in it fails, and `ensure` can then recover it."""
        actions: list[str] = []
        pids = fusedaemon.kill_juicefs(self.mountpoint)
        if not pids:
            # Already dead (killed a moment ago; the stuck probe has not come back yet): the next observation
            # sees the mount ENOTCONN.
            return actions
        self._act(
            actions,
            f"killed juicefs process{'es' if len(pids) > 1 else ''} {', '.join(map(str, pids))} of "
            f"{self.mountpoint}, whose mount was hung",
            logging.WARNING,
        )
        return actions

    def _unmount(self, lazy: bool, actions: list[str], why: str) -> None:
        argv = ["umount", "-l", self.mountpoint] if lazy else ["umount", self.mountpoint]
        res = runner.run(argv, timeout_s=DEFAULT_UMOUNT_TIMEOUT_S)
        if not res.ok and lazy and shutil.which("fusermount3"):
            res = runner.run(["fusermount3", "-uz", self.mountpoint], timeout_s=DEFAULT_UMOUNT_TIMEOUT_S)
        if not res.ok:
            busy = "busy" in (res.stderr + res.stdout).lower()
            raise MountError(
                f"cannot unmount {self.mountpoint} ({why}): {res.summary()}"
                + ("; it is in use, and the agent does not force it" if busy else "")
            )
        kind = "lazily unmounted" if lazy else "unmounted"
        self._act(actions, f"{kind} {self.mountpoint} in {res.seconds:.2f} s because {why}")

    def _mount(self, mode: Mode, actions: list[str], why: str) -> None:
        # A new mount is write-probed at once. Its mount id alone cannot tell: the kernel reuses the id of a
        # mount just unmounted, as a ro -> rw switch does.
        self._last_write = None
        os.makedirs(self.mountpoint, exist_ok=True)
        if self._systemd_mounts():
            how = f"by starting {self.unit_name}"
            res = self._start_unit(mode)
        else:
            how = f"with mount -T {self.settings.fstab}"
            argv = ["mount", "-T", self.settings.fstab, "-o", mode, self.mountpoint]
            res = runner.run(argv, timeout_s=self.mount_timeout_s)
        if not res.ok:
            raise MountError(f"mounting volume {self.volume.name} {mode} {how} failed: {res.summary()}")
        current = self._current_mount()
        if current is None or not mountinfo.is_juicefs(current, self.volume.name):
            raise MountError(f"`mount` succeeded but {self.mountpoint} does not show volume {self.volume.name}")
        outcome = self._probe_fs(write=False, deadline=time.monotonic() + self.settings.probe_timeout_s)
        got = outcome.progress.values.get("read_only")
        if outcome.finished and got is not None and (got is True) != (mode == "ro"):
            raise MountError(f"mounted {self.mountpoint} but it came up {'ro' if got else 'rw'}, not {mode}")
        self._act(
            actions,
            f"mounted volume {self.volume.name} at {self.mountpoint} {mode} {how} in {res.seconds:.2f} s because {why}",
        )

    def _start_unit(self, mode: Mode) -> runner.CommandResult:
        """Mount through systemd's unit for the fstab line (agent.mount.systemdunit); rw lasts until the boot."""
        rw_options = tuple("rw" if o == "ro" else o for o in self.wanted_entry().options) if mode == "rw" else None
        return systemdunit.start_mount_unit(
            self.unit_name, self.mode_dropin_file, rw_options, self.volume.name, self.mount_timeout_s
        )
