"""The agent's gRPC API (AgentService): Status and Assign.

With TLS files configured it serves mutual TLS only (clients need a certificate from the configured CA).
Without them it listens on a loopback address only, unless `tls.allow_insecure_remote` says otherwise.
"""

from __future__ import annotations

import logging
from concurrent import futures
from typing import TYPE_CHECKING

import grpc
from jfsmilvus.common.authz import enforce
from jfsmilvus.common.protomaps import ROLE_TO_PB
from jfsmilvus.common.tls import listen_host, server_credentials
from jfsmilvus.common.wirecheck import assign_request_problem
from jfsmilvus.v1 import agent_pb2, agent_pb2_grpc, node_pb2

from agent.config import AgentConfig
from agent.wire import assignment_from_pb, observation_pb

if TYPE_CHECKING:
    from agent.daemon import Agent

log = logging.getLogger("jfs_milvus.agent.api")


def listen_address(config: AgentConfig) -> str:
    """Where the API listens: the node address with TLS or when allowed, else a loopback address."""
    return f"{listen_host(config.address, config.tls)}:{config.agent_port}"


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, agent: Agent):
        self.agent = agent

    def Status(self, request: agent_pb2.StatusRequest, context: grpc.ServicerContext) -> node_pb2.NodeObservation:
        enforce(context, "AgentService.Status", log)
        return observation_pb(self.agent.status())

    def Assign(self, request: agent_pb2.AssignRequest, context: grpc.ServicerContext) -> agent_pb2.AssignResponse:
        enforce(context, "AgentService.Assign", log)
        problem = assign_request_problem(request)
        if problem is not None:
            log.warning("refused Assign from %s: %s", context.peer(), problem)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        assignment = assignment_from_pb(request)
        refusal = self.agent.push_assignment(assignment, request.leader_term)
        status = self.agent.status()
        return agent_pb2.AssignResponse(
            accepted=refusal is None,
            reason=refusal or f"will converge to {assignment.role} at epoch {assignment.epoch}",
            role_running=ROLE_TO_PB.get(status.role_running, node_pb2.ROLE_STOPPED),
            highest_epoch_seen=status.highest_epoch_seen,
        )


def serve(agent: Agent, config: AgentConfig) -> grpc.Server:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="api"))
    agent_pb2_grpc.add_AgentServiceServicer_to_server(AgentServicer(agent), server)
    address = listen_address(config)
    if config.tls.enabled:
        port = server.add_secure_port(address, server_credentials(config.tls))
        mode = "mutual TLS"
    else:
        port = server.add_insecure_port(address)
        remote = config.tls.allow_insecure_remote
        mode = "plaintext" + (" (insecure remote access allowed)" if remote else ", loopback only")
    if port == 0:
        raise OSError(f"cannot listen on {address} for the agent API (address in use?)")
    server.start()
    log.info("agent API listening on %s (%s)", address, mode)
    return server
