"""The wire's Role and Health enums (node.proto) against the names the daemons use ("rw", "ro", "none";
"healthy", "degraded", "failed", and the mount states "unmounted" and "hung", which are failed on the wire)."""

from __future__ import annotations

from jfsmilvus.v1 import node_pb2

ROLE_TO_PB = {"ro": node_pb2.ROLE_RO, "rw": node_pb2.ROLE_RW, "none": node_pb2.ROLE_STOPPED}
PB_TO_ROLE = {node_pb2.ROLE_RO: "ro", node_pb2.ROLE_RW: "rw", node_pb2.ROLE_STOPPED: "none"}
HEALTH_TO_PB = {
    "healthy": node_pb2.HEALTH_HEALTHY,
    "degraded": node_pb2.HEALTH_DEGRADED,
    "failed": node_pb2.HEALTH_FAILED,
    "unmounted": node_pb2.HEALTH_FAILED,
    "hung": node_pb2.HEALTH_FAILED,
}
PB_TO_HEALTH = {
    node_pb2.HEALTH_HEALTHY: "healthy",
    node_pb2.HEALTH_DEGRADED: "degraded",
    node_pb2.HEALTH_FAILED: "failed",
}
