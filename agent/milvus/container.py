"""The Milvus container as the seed guide's `docker run` makes it, through the Docker SDK.

`ContainerSpec` (pure) says what the container must look like for a role (the agent builds one per start,
`agent.milvus.spec.MilvusSpec.container_spec`); `MilvusDocker` (the edge) finds, starts, stops and
health-checks it. Every container we start carries labels naming its owner, node, role, epoch and config hash,
so an agent that restarts can adopt a matching container instead of restarting it."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
from docker.types import DeviceRequest
from jfsmilvus.common.milvus1 import MILVUS_HTTP_PORT, MILVUS_PORT

from agent.milvus.leasewatch import CONTAINER_LEASEWATCH, wrapped_command
from agent.milvus.server_config import (
    CONTAINER_CONF_DIR,
    CONTAINER_DB_DIR,
    CONTAINER_LOGS_DIR,
    CONTAINER_WAL_DIR,
)
from agent.mount import mountinfo

LABEL_OWNER = "io.jfs-milvus.owner"
LABEL_NODE = "io.jfs-milvus.node"
LABEL_ROLE = "io.jfs-milvus.role"
LABEL_EPOCH = "io.jfs-milvus.epoch"
LABEL_CONFIG = "io.jfs-milvus.config-sha256"
LABEL_GPUS = "io.jfs-milvus.gpus"  # the GPU UUIDs of its device request, comma-separated; "" for none
LABEL_LEASEWATCH = "io.jfs-milvus.leasewatch"
LABEL_CLUSTER_CONFIG = "io.jfs-milvus.cluster-config-version"  # agent/clusterconf.py; absent: agent.yaml alone
OWNER = "jfs-milvus-agent"
STOP_SIGNAL = "SIGINT"


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    node: str
    role: str
    epoch: int
    config_sha256: str
    bind_address: str
    port: int
    http_port: int
    db_dir: str  # on the JuiceFS mount
    conf_dir: str
    logs_dir: str
    wal_dir: str | None  # the writer's WAL of this stint (agent/milvus/waldir.py); a reader mounts none
    gpu_uuids: tuple[str, ...] | None  # None: no GPU request at all; () would mean "no GPU"
    environment: dict[str, str] = field(default_factory=dict)
    # Host path of the lease wrapper script: when set, the container runs the image's command under it
    # (agent.milvus.leasewatch) and kills itself when its lease lapses.
    leasewatch: str | None = None
    config_version: int = 0  # the cluster config version it is built from (0: agent.yaml alone)

    @property
    def labels(self) -> dict[str, str]:
        labels = {
            LABEL_OWNER: OWNER,
            LABEL_NODE: self.node,
            LABEL_ROLE: self.role,
            LABEL_EPOCH: str(self.epoch),
            LABEL_CONFIG: self.config_sha256,
            LABEL_GPUS: ",".join(self.gpu_uuids or ()),
        }
        if self.leasewatch:
            labels[LABEL_LEASEWATCH] = "1"
        if self.config_version:
            labels[LABEL_CLUSTER_CONFIG] = str(self.config_version)
        return labels


@dataclass(frozen=True)
class ContainerState:
    """What Docker says about one of our containers."""

    id: str
    name: str
    image: str
    status: str  # created | running | restarting | exited | paused | dead
    role: str | None
    epoch: int
    config_sha256: str | None
    exit_code: int | None
    started_at: str | None
    error: str | None
    gpus: tuple[str, ...] | None = None  # the GPU UUIDs it was given; None: not labelled (an older container)
    config_version: int | None = None  # the cluster config version it was built from; None: not labelled

    @property
    def running(self) -> bool:
        return self.status == "running"


class DockerUnavailable(Exception):
    """The Docker engine cannot be reached; the message says what was tried."""


class ContainerStartError(Exception):
    """Docker refused to start the container; the message gives the reason in an operator's words."""


def _state_of(container: Any) -> ContainerState:
    """From a full inspect (after a start)."""
    attrs = container.attrs
    state = attrs.get("State", {})
    labels = attrs.get("Config", {}).get("Labels") or {}
    return ContainerState(
        id=container.id[:12],
        name=container.name,
        image=attrs.get("Config", {}).get("Image", ""),
        status=state.get("Status", "unknown"),
        role=labels.get(LABEL_ROLE),
        epoch=_epoch_label(labels),
        config_sha256=labels.get(LABEL_CONFIG),
        gpus=_gpus_label(labels),
        config_version=_int_label(labels, LABEL_CLUSTER_CONFIG),
        exit_code=state.get("ExitCode") if state.get("Status") in ("exited", "dead") else None,
        started_at=state.get("StartedAt"),
        error=state.get("Error") or None,
    )


def _gpus_label(labels: dict[str, str]) -> tuple[str, ...] | None:
    value = labels.get(LABEL_GPUS)
    return None if value is None else tuple(u for u in value.split(",") if u)


def _int_label(labels: dict[str, str], name: str) -> int | None:
    value = labels.get(name)
    return int(value) if value is not None and value.isdigit() else None


def _epoch_label(labels: dict[str, str]) -> int:
    try:
        return int(labels.get(LABEL_EPOCH, "0"))
    except ValueError:
        return 0


_EXIT_CODE = re.compile(r"Exited \((-?\d+)\)")


def state_from_summary(summary: dict[str, Any]) -> ContainerState:
    """From one entry of Docker's container list (GET /containers/json): no inspect needed."""
    labels = summary.get("Labels") or {}
    names = summary.get("Names") or ["/"]
    status_text = summary.get("Status") or ""
    match = _EXIT_CODE.search(status_text)
    return ContainerState(
        id=str(summary.get("Id", ""))[:12],
        name=names[0].lstrip("/"),
        image=summary.get("Image", ""),
        status=summary.get("State", "unknown"),
        role=labels.get(LABEL_ROLE) if labels.get(LABEL_OWNER) == OWNER else None,
        epoch=_epoch_label(labels),
        config_sha256=labels.get(LABEL_CONFIG),
        gpus=_gpus_label(labels),
        config_version=_int_label(labels, LABEL_CLUSTER_CONFIG),
        exit_code=int(match.group(1)) if match else None,
        started_at=None,
        error=None,
    )


def explain_start_error(exc: Exception, spec: ContainerSpec) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    lowered = text.lower()
    if isinstance(exc, docker.errors.ImageNotFound) or "no such image" in lowered:
        return f"image {spec.image} is not on this node (docker pull or docker load it)"
    if "port is already allocated" in lowered or "address already in use" in lowered:
        return (
            f"port {spec.port} or {spec.http_port} on {spec.bind_address} is already taken by another process "
            "or container"
        )
    if "could not select device driver" in lowered or "nvidia" in lowered:
        return f"Docker cannot give GPUs to containers (install the NVIDIA container toolkit): {text}"
    if "conflict" in lowered and "already in use" in lowered:
        return f"a container named {spec.name} exists that this agent does not own; remove or rename it"
    return text


DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
LIST_QUERY = "all=1&limit=-1&size=0&trunc_cmd=0"  # what the SDK's containers(all=True) sends


def unix_socket_path(base_url: str | None, environ: Mapping[str, str]) -> str | None:
    """The engine's Unix socket when the agent talks to one (the usual case), else None (tcp://, ssh://)."""
    url = base_url or environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
    for prefix in ("unix://", "http+unix://"):
        if url.startswith(prefix) and len(url) > len(prefix):
            return url[len(prefix) :]
    return None


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout_s: float):
        super().__init__("localhost", timeout=timeout_s)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def get_json_over_unix(path: str, target: str, timeout_s: float) -> Any:
    """GET `target` from the engine on the Unix socket `path`: a few hundred microseconds of CPU where the
    SDK's requests stack spends a millisecond or more (proxy lookups in the environment, adapters, hooks).
    Raises OSError, http.client.HTTPException, or ValueError for a body that is not JSON."""
    conn = _UnixHTTPConnection(path, timeout_s)
    try:
        conn.request("GET", target, headers={"Connection": "close"})
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise http.client.HTTPException(f"HTTP {response.status} {response.reason}: {body[:200]!r}")
        return json.loads(body)
    finally:
        conn.close()


class MilvusDocker:
    """The Docker edge for one node's Milvus container."""

    def __init__(self, node: str, base_url: str | None = None, timeout_s: float = 30.0):
        self.node = node
        self._base_url = base_url
        self._timeout_s = timeout_s
        self._client: Any = None
        self._socket_path = unix_socket_path(base_url, os.environ)

    def _docker(self) -> Any:
        if self._client is None:
            try:
                if self._base_url:
                    self._client = docker.DockerClient(base_url=self._base_url, timeout=int(self._timeout_s))
                else:
                    self._client = docker.from_env(timeout=int(self._timeout_s))
                self._client.ping()
            except docker.errors.DockerException as exc:
                self._client = None
                raise DockerUnavailable(
                    f"Docker engine unreachable ({self._base_url or 'DOCKER_HOST or /var/run/docker.sock'}): {exc}"
                ) from exc
        return self._client

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except docker.errors.NotFound:
            raise
        except (docker.errors.DockerException, OSError) as exc:
            if isinstance(exc, docker.errors.APIError) and exc.status_code is not None and exc.status_code < 500:
                raise
            self._client = None
            raise DockerUnavailable(f"Docker engine failed to {what}: {exc}") from exc

    def list_ours(self, name: str | None = None) -> list[ContainerState]:
        """Our containers on this node, and any container holding `name` (so a stranger is noticed).

        One list request and no inspect: this runs every agent cycle, so on a Unix socket it bypasses the SDK's
        requests stack (same request, same API version, same timeout).
        """
        client = self._docker()
        if self._socket_path is None:
            summaries = self._call("list containers", client.api.containers, all=True)
        else:
            target = f"/v{client.api.api_version}/containers/json?{LIST_QUERY}"
            try:
                summaries = get_json_over_unix(self._socket_path, target, self._timeout_s)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self._client = None
                raise DockerUnavailable(f"Docker engine failed to list containers: {exc}") from exc
        found = []
        for summary in summaries:
            labels = summary.get("Labels") or {}
            ours = labels.get(LABEL_OWNER) == OWNER and labels.get(LABEL_NODE) == self.node
            named = name is not None and f"/{name}" in (summary.get("Names") or [])
            if ours or named:
                found.append(state_from_summary(summary))
        return sorted(found, key=lambda s: s.name)

    def runtimes(self) -> list[str]:
        """The container runtimes the engine offers (the NVIDIA one is what gives containers GPUs)."""
        info = self._call("read the engine's info", self._docker().info)
        return sorted((info.get("Runtimes") or {}).keys())

    def device_inside(self, container_id: str, path: str) -> str | None:
        """The device (major:minor) of the mount the running container sees at `path`, read from its init
        process's /proc/PID/mountinfo; None when it does not run, has no mount there, or cannot be read."""
        client = self._docker()
        try:
            attrs = self._call("inspect the container", client.api.inspect_container, container_id)
        except docker.errors.NotFound:
            return None
        pid = attrs.get("State", {}).get("Pid") or 0
        if not isinstance(pid, int) or pid <= 0:
            return None
        try:
            with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="replace") as f:
                return mountinfo.device_at(f.read(), path)
        except OSError:
            return None

    def started_at(self, container_id: str) -> str | None:
        """When the container last started (Docker's RFC 3339 time), from an inspect."""
        client = self._docker()
        try:
            attrs = self._call("inspect the container", client.api.inspect_container, container_id)
        except docker.errors.NotFound:
            return None
        return attrs.get("State", {}).get("StartedAt")

    def start(self, spec: ContainerSpec) -> ContainerState:
        client = self._docker()
        for path in (spec.conf_dir, spec.logs_dir):
            os.makedirs(path, exist_ok=True)
        volumes = {
            spec.db_dir: {"bind": CONTAINER_DB_DIR, "mode": "rw" if spec.role == "rw" else "ro"},
            spec.conf_dir: {"bind": CONTAINER_CONF_DIR, "mode": "ro"},
            spec.logs_dir: {"bind": CONTAINER_LOGS_DIR, "mode": "rw"},
        }
        if spec.wal_dir is not None:
            # A reader runs with wal.enable: false and never opens wal.path (server_config.wal_settings), so it
            # gets no WAL mount: a former writer's WAL on this node stays out of its reach.
            os.makedirs(spec.wal_dir, exist_ok=True)
            volumes[spec.wal_dir] = {"bind": CONTAINER_WAL_DIR, "mode": "rw"}
        device_requests = None
        if spec.gpu_uuids:
            device_requests = [DeviceRequest(driver="nvidia", device_ids=list(spec.gpu_uuids), capabilities=[["gpu"]])]
        wrapper: dict[str, Any] = {}
        if spec.leasewatch:
            volumes[spec.leasewatch] = {"bind": CONTAINER_LEASEWATCH, "mode": "ro"}
            wrapper = {"entrypoint": ["/bin/sh", CONTAINER_LEASEWATCH], "command": self._image_command(spec)}
        try:
            container = client.containers.run(
                spec.image,
                name=spec.name,
                detach=True,
                labels=spec.labels,
                environment=spec.environment,
                ports={
                    f"{MILVUS_PORT}/tcp": (spec.bind_address, spec.port),
                    f"{MILVUS_HTTP_PORT}/tcp": (spec.bind_address, spec.http_port),
                },
                volumes=volumes,
                device_requests=device_requests,
                restart_policy={"Name": "no"},
                # Milvus 1.x stops cleanly on SIGINT (flush, exit 0); SIGTERM is a "critical signal" to it, exit 1
                # (utils/SignalUtil.cpp). `docker stop` sends this; the lease wrapper forwards it as SIGINT too.
                stop_signal=STOP_SIGNAL,
                **wrapper,
            )
        except docker.errors.DockerException as exc:
            # A container that was created but could not start (port taken) is removed, not left behind.
            self._remove_quietly(spec.name)
            if isinstance(exc, docker.errors.APIError | docker.errors.ImageNotFound):
                raise ContainerStartError(explain_start_error(exc, spec)) from exc
            self._client = None
            raise DockerUnavailable(f"Docker engine failed to start {spec.name}: {exc}") from exc
        container.reload()
        return _state_of(container)

    def _image_command(self, spec: ContainerSpec) -> list[str]:
        """The image's own entrypoint + cmd (docker image inspect), for the lease wrapper to run."""
        client = self._docker()
        try:
            attrs = self._call("inspect the image", client.api.inspect_image, spec.image)
        except docker.errors.NotFound as exc:
            raise ContainerStartError(explain_start_error(exc, spec)) from exc
        except docker.errors.APIError as exc:
            raise ContainerStartError(explain_start_error(exc, spec)) from exc
        config = attrs.get("Config") or {}
        try:
            return wrapped_command(config.get("Entrypoint"), config.get("Cmd"))
        except ValueError as exc:
            raise ContainerStartError(f"image {spec.image}: {exc}") from exc

    def stop(self, container_id: str, timeout_s: float) -> int | None:
        """Stop gracefully (the container's stop signal, SIGINT, then SIGKILL after `timeout_s`) and remove it;
        its exit code (0: Milvus stopped gracefully, which flushes a writer; 137: killed), None when unknown."""
        client = self._docker()
        try:
            container = self._call("find the container", client.containers.get, container_id)
            self._call("stop the container", container.stop, timeout=max(1, round(timeout_s)))
            exit_code: int | None = None
            with contextlib.suppress(docker.errors.DockerException, KeyError, TypeError):
                container.reload()
                exit_code = int(container.attrs["State"]["ExitCode"])
            self._call("remove the container", container.remove, force=True)
        except docker.errors.NotFound:
            return None
        return exit_code

    def kill(self, container_id: str) -> None:
        """Stop at once (self-fencing): SIGKILL and remove."""
        client = self._docker()
        try:
            container = self._call("find the container", client.containers.get, container_id)
            self._call("remove the container", container.remove, force=True)
        except docker.errors.NotFound:
            return

    def _remove_quietly(self, name: str) -> None:
        with contextlib.suppress(docker.errors.DockerException, DockerUnavailable):
            self._docker().containers.get(name).remove(force=True)


def check_milvus_health(address: str, http_port: int, timeout_s: float = 2.0) -> str | None:
    """None when `GET /state` answers Milvus' success JSON; otherwise why not, in one line.

    Plain http.client (no urllib opener, no proxy lookup): it runs every cycle, and Milvus is on this node or
    a peer, never behind a proxy."""
    url = f"http://{address}:{http_port}/state"
    conn = http.client.HTTPConnection(address, http_port, timeout=timeout_s)
    try:
        conn.request("GET", "/state")
        response = conn.getresponse()
        body = response.read(4096)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        return f"GET {url} failed: {str(exc) or type(exc).__name__}"
    finally:
        conn.close()
    if status >= 400:
        return f"GET {url} answered HTTP {status}"
    try:
        answer = json.loads(body)
    except ValueError:
        return f"GET {url} answered something that is not JSON"
    if not isinstance(answer, dict) or answer.get("code") != 0:
        return f"GET {url} answered {answer!r}, not code 0"
    return None
