"""Who may do what, tried on a running local cluster: issue 15's attacks with a reader's agent certificate.

    sudo ./scripts/cluster up && sudo .venv/bin/python scripts/identity-attacks.py; sudo ./scripts/cluster down

Each line prints what the cluster answered: PERMISSION_DENIED or INVALID_ARGUMENT with its one-line reason is
the expected outcome; ACCEPTED is a hole. The last line shows the cluster unchanged.
"""

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "proto")]
from jfsmilvus.v1 import agent_pb2, agent_pb2_grpc, coordinator_pb2, coordinator_pb2_grpc, node_pb2  # noqa: E402

m = json.loads(Path("/var/tmp/jfs-milvus-cluster/cluster.json").read_text())
tls = m["tls"]
nodes = {n["name"]: n for n in m["nodes"]}
names = sorted(nodes)
forger = names[1]


def creds(name: str) -> grpc.ChannelCredentials:
    d = Path(tls)
    return grpc.ssl_channel_credentials(
        (d / "ca.pem").read_bytes(), (d / f"{name}.key").read_bytes(), (d / f"{name}.pem").read_bytes()
    )


def call(label: str, fn) -> None:
    try:
        out = fn()
        print(f"{label}: ACCEPTED {str(out)[:120]!r}")
    except grpc.RpcError as exc:
        print(f"{label}: {exc.code().name}: {exc.details()}")


ops = {"ssl_target_name_override": "127.0.0.1"}
coord = coordinator_pb2_grpc.CoordinatorServiceStub(
    grpc.secure_channel(m["coordinators"][0]["address"], creds(forger), options=list(ops.items()))
)
env = {k: v for k, v in (line.split("=", 1) for line in Path(m["root"], "env").read_text().split("export ")[1:])}
env = {k: v.strip() for k, v in env.items()}
ctl = [sys.executable.replace("python", "coordinatorctl")]
writer = json.loads(subprocess.run([*ctl, "status", "-o", "json"], capture_output=True, text=True,
                                   env=dict(os.environ, **env)).stdout)["writer"]
print(f"writer {writer}; forging with the agent certificate of {forger}")

w = nodes[writer]
agent = agent_pb2_grpc.AgentServiceStub(
    grpc.secure_channel(w["agent"], creds(forger), options=[("grpc.ssl_target_name_override", w["address"])])
)
assign = agent_pb2.AssignRequest(assignment=node_pb2.Assignment(role=node_pb2.ROLE_RO, epoch=10**9))
call("1. AgentService.Assign(ro, epoch 10**9) to the writer", lambda: agent.Assign(assign, timeout=5))

forged = {"JFS_MILVUS_TLS_CERT": f"{tls}/{forger}.pem", "JFS_MILVUS_TLS_KEY": f"{tls}/{forger}.key"}
bad_env = {**os.environ, **env, **forged}
for args in (["pause", "--reason", "x"], ["resume"], ["priority", names[0], "5"],
             ["failover", "--to", names[0], "--force", "--yes"]):
    r = subprocess.run([*ctl, *args], capture_output=True, text=True, env=bad_env, timeout=60)
    print(f"2. coordinatorctl {' '.join(args)}: exit {r.returncode}: {(r.stderr or r.stdout).strip()[:200]}")


def report(node: str, **obs) -> coordinator_pb2.ReportRequest:
    base = dict(node=node, address=nodes.get(node, {"address": "127.0.0.1"})["address"], observed_at_unix=time.time())
    base.update(obs)
    o = node_pb2.NodeObservation(**base)
    return coordinator_pb2.ReportRequest(observation=o)


hung = report(writer)
hung.observation.mounts.add(volume="jfsmilvus", mountpoint="/x", mounted=True, state="hung", reasons=["forged"])
call(f"3. Report naming {writer} (mount hung) from {forger}'s certificate", lambda: coord.Report(hung, timeout=5))
for label, req in (
    ("4a. Report with a 1 MiB node name", report("n" * (1 << 20))),
    ("4b. Report with a newline in the name", report(forger + "\nx")),
    ("4c. Report with a quote in the name", report(forger + "'")),
    ("4d. Report with an IPv6 address", report(forger, address="::1")),
    ("4e. Report with port 4000000000", report(forger, milvus_port=4000000000 % (1 << 32))),
    ("4f. Report with a NaN lease", report(forger, lease_left_s=math.nan)),
    ("4g. Report with role enum 77", report(forger, role_running=77)),
):
    call(label, lambda req=req: coord.Report(req, timeout=5))
time.sleep(3)
after = json.loads(subprocess.run([*ctl, "status", "-o", "json"], capture_output=True, text=True,
                                  env=dict(os.environ, **env)).stdout)
print(f"after: writer {after['writer']} epoch {after['epoch']} paused {after.get('paused')} nodes "
      f"{[n['name'] for n in after['nodes']]}")
