"""What goes into each Debian package: names, dependencies, commands, config, unit."""

from __future__ import annotations

import os
from dataclasses import dataclass

LIB_ROOT = "/usr/lib/jfs-milvus"
CONF_DIR = "/etc/jfs-milvus"
SHARE_DIR = "/usr/share/jfs-milvus-coordinator"  # the coordinator package's data: alert rules, dashboard
# Who builds the packages: DEBFULLNAME and DEBEMAIL, as for other Debian tools; a placeholder otherwise.
MAINTAINER = "{} <{}>".format(
    os.environ.get("DEBFULLNAME", "jfs-milvus developers"), os.environ.get("DEBEMAIL", "dev@jfs-milvus.invalid")
)
PYTHON_DEPENDS = "python3 (>= 3.11), python3 (<< 3.12)"  # grpcio, psutil, PyYAML are built for cp311


@dataclass(frozen=True)
class PackageSpec:
    role: str  # agent | coordinator
    summary: str
    description: str
    depends: tuple[str, ...]
    recommends: tuple[str, ...]
    suggests: tuple[str, ...]
    commands: tuple[tuple[str, str], ...]  # /usr/bin name -> "module:function"
    ships_juicefs: bool
    # Our top-level Python packages this package ships (the wheel holds all of them; the others are removed).
    python_packages: tuple[str, ...] = ()
    data_files: tuple[tuple[str, str], ...] = ()  # file in the tree -> where it is installed (not a conffile)
    # mount(8)'s helper for the agent's fstab lines (agent/mounthelper.py), e.g. /sbin/mount.juicefs-jfsmilvus
    mount_helper: str | None = None

    @property
    def name(self) -> str:
        return f"jfs-milvus-{self.role}"

    @property
    def libdir(self) -> str:
        return f"{LIB_ROOT}/{self.role}"

    @property
    def config(self) -> str:
        return f"{CONF_DIR}/{self.role}.yaml"

    @property
    def unit(self) -> str:
        return f"{self.name}.service"


AGENT = PackageSpec(
    role="agent",
    summary="jfs-milvus node agent for Milvus 1.x GPU nodes on JuiceFS",
    description=(
        "Runs on each GPU node of a jfs-milvus cluster: watches the GPUs through\n"
        "NVML, keeps the JuiceFS mount in /etc/fstab mounted and healthy, runs the\n"
        "local Milvus container in the role (rw or ro) the coordinator assigns,\n"
        "and serves its status over gRPC and /metrics. Its Python code and\n"
        "libraries live in /usr/lib/jfs-milvus/agent, with the juicefs client."
    ),
    depends=(PYTHON_DEPENDS, "fuse3", "init-system-helpers (>= 1.54~)"),
    recommends=("docker.io | docker-ce",),
    suggests=("jfs-milvus-coordinator",),
    commands=(("jfs-milvus-agent", "agent.cli:main"),),
    ships_juicefs=True,
    python_packages=("agent", "jfsmilvus"),
    mount_helper="/sbin/mount.juicefs-jfsmilvus",
)

COORDINATOR = PackageSpec(
    role="coordinator",
    summary="jfs-milvus coordinator: roles, leases and failover for Milvus 1.x",
    description=(
        "Assigns the rw and ro roles to the Milvus nodes of a jfs-milvus cluster\n"
        "with epochs and leases kept in MySQL, fails over to a healthy reader when\n"
        "the writer fails, and keeps Mishards pointed at the writer and the\n"
        "healthy readers. Ships coordinatorctl, the operator's command line, and\n"
        "Prometheus alerting rules and a Grafana dashboard for the cluster in\n"
        "/usr/share/jfs-milvus-coordinator. Runs as the system user jfs-milvus."
    ),
    depends=(PYTHON_DEPENDS, "adduser", "init-system-helpers (>= 1.54~)"),
    recommends=(),
    suggests=("mariadb-server | default-mysql-server",),
    commands=(
        ("jfs-milvus-coordinator", "coordinator.cli:main"),
        ("coordinatorctl", "coordinator.ctl:main"),
    ),
    ships_juicefs=False,
    python_packages=("coordinator", "jfsmilvus"),
    # Prometheus rules and scrape jobs, the Grafana dashboard: README "Dashboards and alerts".
    data_files=(
        ("monitoring/jfs-milvus.rules.yml", f"{SHARE_DIR}/prometheus/jfs-milvus.rules.yml"),
        ("monitoring/prometheus.example.yml", f"{SHARE_DIR}/prometheus/prometheus.example.yml"),
        ("monitoring/jfs-milvus-dashboard.json", f"{SHARE_DIR}/grafana/jfs-milvus.json"),
    ),
)

PACKAGES = {spec.role: spec for spec in (AGENT, COORDINATOR)}
