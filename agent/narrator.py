"""The loop's voice: one log line per step that acted and per new wait or mount state (the rules are
`agent.saywhy`'s), and what the agent is doing now, written to the now file for `jfs-milvus-agent status`."""

from __future__ import annotations

import logging
import os
import time

from jfsmilvus.common.atomicfile import write_atomic

from agent.milvus.situation import Action, Step
from agent.mount import MountStatus
from agent.saywhy import NOW_FILE, Doing, mount_news, next_doing, now_file_text

log = logging.getLogger("jfs_milvus.agent")


class Narrator:
    def __init__(self, node: str, state_dir: str) -> None:
        self.node = node
        self.state_dir = state_dir
        self.doing: Doing | None = None  # the current step, since when (saywhy.next_doing)
        self._mount_said: dict[str, tuple[str, str, str]] = {}  # each mount's state as last logged
        self._now_file_error: str | None = None

    @property
    def now_file(self) -> str:
        return os.path.join(self.state_dir, NOW_FILE)

    def say_step(self, step: Step, timing: tuple[float, float]) -> None:
        """One line per step that acted (with how long it took, after how long observing), and per new wait: a
        wait whose reason differs only in its durations ("starting for 3s", "for 4s") is the same wait
        (agent.saywhy). What it is doing now goes to the status and the now file."""
        doing, news = next_doing(self.doing, step.action.value, step.reason, step.acted, time.time())
        self.doing = doing
        if not news:
            return
        self._write_now_file(doing)
        if not step.acted:
            log.info("%s: %s", step.action.value, step.reason)
            return
        level = logging.WARNING if step.action is Action.KILL else logging.INFO
        log.log(level, "%s: %s (%.2fs, after observing for %.2fs)", step.action.value, step.reason, *timing)

    def say_mounts(self, mounts: dict[str, MountStatus]) -> None:
        """One line per change of a mount's state, mode or reasons, with why (a juicefs that died and came back
        by itself between two steps is said too)."""
        for name, m in mounts.items():
            key, line = mount_news(self._mount_said.get(name), m.volume, m.mountpoint, m.state, m.mode, m.reasons)
            self._mount_said[name] = key
            if line is not None:
                log.log(logging.INFO if m.state == "healthy" else logging.WARNING, "%s", line)

    def _write_now_file(self, doing: Doing) -> None:
        """What the agent is doing now, for `jfs-milvus-agent status` (written when it changes)."""
        try:
            write_atomic(self.now_file, now_file_text(doing, os.getpid(), self.node), mode=0o644)
            self._now_file_error = None
        except OSError as exc:
            if str(exc) != self._now_file_error:
                self._now_file_error = str(exc)
                log.warning(
                    "%s not written (jfs-milvus-agent status cannot say what the agent does): %s", self.now_file, exc
                )
