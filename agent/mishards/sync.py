"""Mishards kept in step with the assignment on nodes that host it: the discovery settings the coordinator sends
are validated, recorded in the env file (the agent's record, never mounted into Mishards) and handed to the
keeper (`agent.mishards.keeper`), which runs the Mishards container with them as its environment."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from jfsmilvus.common.atomicfile import line_not_utf8, read_text, write_atomic
from jfsmilvus.common.secrets import SecretError

from agent.assignment import Assignment
from agent.config import MishardsSettings
from agent.mishards.envfile import MishardsDiscovery, MishardsEnvError, owned_values, render_env_file
from agent.mishards.keeper import MishardsKeeper, MishardsWant
from agent.mishards.plan import refuse_dollar
from agent.observation import MishardsView

log = logging.getLogger("jfs_milvus.agent")


class MishardsSync:
    def __init__(self, settings: MishardsSettings, keeper: MishardsKeeper, note_error: Callable[[str], None]):
        self.settings = settings
        self.keeper = keeper
        self._note_error = note_error
        self._written: str | None = None  # the env file's text as last written, or "error:..." as last said
        self._env_file_said = False  # the env file's bytes that are not UTF-8 were said

    def sync(self, assignment: Assignment) -> None:
        """The assignment's discovery settings to Mishards; a refusal leaves Mishards as it is, and says why."""
        if not self.settings.enabled or assignment.discovery is None:
            return
        try:
            self.write_env(assignment.discovery)
            if self.keeper.status.get("error"):
                self._note_error(str(self.keeper.status["error"]))
        except (MishardsEnvError, SecretError, OSError) as exc:
            self._note_error(f"Mishards settings refused: {exc}")
            if self._written != f"error:{exc}":
                log.error("Mishards settings refused, Mishards left as it is: %s", exc)
                self._written = f"error:{exc}"

    def write_env(self, discovery: MishardsDiscovery) -> bool:
        """Validate the settings, record them in the env file and hand them to the keeper; True when the file
        changed."""
        settings = self.settings
        password = settings.database_password.load() if settings.database_password else None
        values = owned_values(discovery, settings.server_port, settings.database_uri or "", password)
        refuse_dollar(values)
        # The operator's lines are kept byte for byte, UTF-8 or not (said once).
        existing = read_text(settings.env_file, errors="surrogateescape")
        line = line_not_utf8(existing) if existing is not None and not self._env_file_said else None
        if line is not None:
            self._env_file_said = True
            log.warning("%s: line %d holds bytes that are not UTF-8; kept byte for byte", settings.env_file, line)
        text = render_env_file(existing, values)
        changed = write_atomic(settings.env_file, text, mode=0o600, errors="surrogateescape")
        self._written = text
        if changed:
            log.info(
                "Mishards settings: writer %s:%d, hosts %s (recorded in %s)",
                discovery.writer_host,
                discovery.writer_port,
                ",".join(discovery.hosts),
                settings.env_file,
            )
        self.keeper.want(
            MishardsWant(
                image=settings.image or "",
                name=settings.container_name,
                values=values,
                writer_host=discovery.writer_host,
                writer_port=discovery.writer_port,
                hosts=discovery.hosts,
                host_port=discovery.discovery_port,
                hold_s=settings.writer_hold_s,
                probe_timeout_s=settings.probe_timeout_s,
            )
        )
        return changed

    @property
    def writer(self) -> str:
        """WOSERVER of the Mishards container this agent runs now ("" when none runs)."""
        if not self.settings.enabled:
            return ""
        container = self.keeper.status.get("container") or {}
        return str(container.get("writer", "")) if container.get("state") == "running" else ""

    def status(self) -> MishardsView | None:
        """What the keeper last saw, typed; None on a node that hosts no Mishards."""
        if not self.settings.enabled:
            return None
        status: dict[str, Any] = self.keeper.status
        container = status.get("container") or {}
        return MishardsView(
            name=self.settings.container_name,
            image=self.settings.image or "",
            state=str(status.get("state", "")),
            error=str(status.get("error", "")),
            reason=str(status.get("reason", "")),
            listed_hosts=tuple(status.get("listed_hosts") or ()),
            left_out=tuple(status.get("left_out") or ()),
            container_state=str(container.get("state") or ""),
            container_hosts=tuple(container.get("hosts") or ()),
            foreign_overrides=tuple(
                f"{f['name']}: {','.join(f['overriding_keys'])}" for f in status.get("foreign") or ()
            ),
        )
