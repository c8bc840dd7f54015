"""The cluster config RPCs (GetClusterConfig, ListClusterConfigs, CommitClusterConfig), mixed into the
CoordinatorServicer, and the config a Report's answer carries. Operator certificates only; the leader only."""

from __future__ import annotations

import logging
from typing import Any

import grpc
from jfsmilvus.common.authz import enforce
from jfsmilvus.common.configschema import ConfigError
from jfsmilvus.common.wirecheck import config_commit_problem, config_request_problem
from jfsmilvus.v1 import coordinator_pb2

from coordinator.configanswer import ConfigAnswers
from coordinator.configcommit import commit_cluster_config, proposed_config
from coordinator.configstore import ConfigVersion, config_state, history, read_version
from coordinator.store import NotLeader, StoreError

log = logging.getLogger("jfs_milvus.coordinator.api")


def answer_cluster_config(answer: coordinator_pb2.ReportResponse, answers: ConfigAnswers, node: str) -> None:
    """Put the version `node` is to run into the answer (nothing when the leader holds none)."""
    found = answers.for_node(node)
    if found is not None:
        answer.cluster_config.version, answer.cluster_config.body = found


def version_pb(v: ConfigVersion, current: int) -> coordinator_pb2.ClusterConfigVersion:
    return coordinator_pb2.ClusterConfigVersion(
        version=v.version,
        body=v.body,
        author=v.author,
        reason=v.reason,
        created_unix=v.created_unix,
        restart_needed=v.restart_needed,
        current=current,
    )


class ConfigRpcs:
    c: Any  # the Coordinator (CoordinatorServicer sets it)

    def _config_leader(self, context: grpc.ServicerContext, rpc: str, request: Any) -> None:
        enforce(context, f"CoordinatorService.{rpc}", log)
        problem = config_commit_problem(request) if rpc == "CommitClusterConfig" else config_request_problem(request)
        if problem is not None:
            log.warning("refused %s from %s: %s", rpc, context.peer(), problem)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        if self.c.leadership is None:
            leader, address = self.c.leader_seen
            where = f" (the leader is {leader} at {address})" if leader else ""
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"not the leader{where}: ask the leader")

    def GetClusterConfig(
        self, request: coordinator_pb2.GetClusterConfigRequest, context: grpc.ServicerContext
    ) -> coordinator_pb2.ClusterConfigVersion:
        self._config_leader(context, "GetClusterConfig", request)
        try:
            current = config_state(self.c.store).current
            wanted = request.version or current
            found = read_version(self.c.store, wanted) if wanted else None
        except StoreError as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        if found is None and request.version:
            missing = f"no cluster config version {request.version} (current: {current})"
            context.abort(grpc.StatusCode.NOT_FOUND, missing)
        if found is None:
            return coordinator_pb2.ClusterConfigVersion(version=0, body=proposed_config(self.c), current=0)
        return version_pb(found, current)

    def ListClusterConfigs(
        self, request: coordinator_pb2.ListClusterConfigsRequest, context: grpc.ServicerContext
    ) -> coordinator_pb2.ClusterConfigHistory:
        self._config_leader(context, "ListClusterConfigs", request)
        try:
            current = config_state(self.c.store).current
            versions = history(self.c.store, request.limit or 50)
        except StoreError as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return coordinator_pb2.ClusterConfigHistory(
            versions=[version_pb(v, current) for v in versions], current=current
        )

    def CommitClusterConfig(
        self, request: coordinator_pb2.CommitClusterConfigRequest, context: grpc.ServicerContext
    ) -> coordinator_pb2.CommitClusterConfigResponse:
        self._config_leader(context, "CommitClusterConfig", request)
        by = str(enforce(context, "CoordinatorService.CommitClusterConfig", log))
        try:
            result = commit_cluster_config(
                self.c, request.body, request.reason, request.expected_current, request.rollback_of, by
            )
        except ConfigError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except NotLeader as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except StoreError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return coordinator_pb2.CommitClusterConfigResponse(
            committed=result.committed,
            version=result.version,
            restart_needed=result.restart_needed,
            message=result.message,
            nodes_pinned=result.nodes_pinned,
        )
