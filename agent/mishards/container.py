"""The Docker edge for the Mishards container the agent runs on a Mishards node.

Started with the settings as its environment, on the host network (Mishards binds `[::]:SERVER_PORT` and
reaches the Milvus nodes by address), under Docker's init (`init=True`): Mishards installs no SIGTERM handler,
so as PID 1 it would ignore `docker stop`; the agent replaces it with a direct kill anyway. Labels name the
owner, node, component, writer, hosts and a hash of image + environment, so a restarted agent adopts it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

from agent.milvus.container import LABEL_NODE, LABEL_OWNER, OWNER, DockerUnavailable, MilvusDocker

LABEL_COMPONENT = "io.jfs-milvus.component"
LABEL_WRITER = "io.jfs-milvus.mishards-writer"
LABEL_HOSTS = "io.jfs-milvus.mishards-hosts"
LABEL_ENV = "io.jfs-milvus.mishards-env-sha256"
COMPONENT = "mishards"


@dataclass(frozen=True)
class MishardsContainer:
    id: str
    name: str
    status: str
    ours: bool
    writer: str
    hosts: tuple[str, ...]
    env_hash: str
    exit_code: int | None

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True)
class ForeignMishards:
    """A container that looks like Mishards and is not the agent's; `environment` is KEY=value (never shown)."""

    name: str
    status: str
    environment: list[str]


class MishardsStartError(Exception):
    pass


def _state(container: Any, node: str) -> MishardsContainer:
    attrs = container.attrs
    labels = attrs.get("Config", {}).get("Labels") or {}
    state = attrs.get("State", {})
    return MishardsContainer(
        id=container.id[:12],
        name=container.name,
        status=state.get("Status", "unknown"),
        ours=labels.get(LABEL_OWNER) == OWNER
        and labels.get(LABEL_NODE) == node
        and labels.get(LABEL_COMPONENT) == COMPONENT,
        writer=labels.get(LABEL_WRITER, ""),
        hosts=tuple(h for h in labels.get(LABEL_HOSTS, "").split(",") if h),
        env_hash=labels.get(LABEL_ENV, ""),
        exit_code=state.get("ExitCode") if state.get("Status") in ("exited", "dead") else None,
    )


class MishardsDocker:
    def __init__(self, docker_edge: MilvusDocker, node: str) -> None:
        self._edge = docker_edge  # shares its client and its error handling
        self.node = node

    def find(self, name: str) -> MishardsContainer | None:
        client = self._edge._docker()
        try:
            container = self._edge._call("find the Mishards container", client.containers.get, name)
        except docker.errors.NotFound:
            return None
        return _state(container, self.node)

    def replace(
        self, name: str, image: str, environment: dict[str, str], writer: str, hosts: tuple[str, ...], env_hash: str
    ) -> MishardsContainer:
        """Kill and remove any container called `name` (no SIGTERM wait), then start Mishards afresh."""
        client = self._edge._docker()
        with contextlib.suppress(docker.errors.NotFound):
            old = self._edge._call("find the Mishards container", client.containers.get, name)
            self._edge._call("remove the Mishards container", old.remove, force=True)
        labels = {
            LABEL_OWNER: OWNER,
            LABEL_NODE: self.node,
            LABEL_COMPONENT: COMPONENT,
            LABEL_WRITER: writer,
            LABEL_HOSTS: ",".join(hosts),
            LABEL_ENV: env_hash,
        }
        try:
            container = client.containers.run(
                image,
                name=name,
                detach=True,
                labels=labels,
                environment=environment,
                network_mode="host",
                init=True,
                restart_policy={"Name": "no"},
            )
        except docker.errors.ImageNotFound as exc:
            raise MishardsStartError(f"image {image} is not on this node (docker pull or docker load it)") from exc
        except docker.errors.APIError as exc:
            with contextlib.suppress(docker.errors.DockerException):
                client.containers.get(name).remove(force=True)
            raise MishardsStartError(f"Docker refused to start {name}: {exc.explanation or exc}") from exc
        except docker.errors.DockerException as exc:
            raise DockerUnavailable(f"Docker engine failed to start {name}: {exc}") from exc
        container.reload()
        return _state(container, self.node)

    def foreign(self, own_name: str) -> list[ForeignMishards]:
        """Containers whose name or image says Mishards, not the agent's own, with their environment."""
        client = self._edge._docker()
        found = []
        for container in self._edge._call("list containers", client.containers.list, all=True):
            attrs = container.attrs
            config = attrs.get("Config", {})
            labels = config.get("Labels") or {}
            if container.name == own_name or labels.get(LABEL_COMPONENT) == COMPONENT:
                continue
            if "mishards" not in container.name.lower() and "mishards" not in str(config.get("Image", "")).lower():
                continue
            found.append(
                ForeignMishards(container.name, attrs.get("State", {}).get("Status", ""), config.get("Env") or [])
            )
        return found
