"""What the agent answers a load balancer's health check (HAProxy's `option httpchk`), pure: the loop's last
published observation (`agent.snapshot.NodeSnapshot`: no Docker call, no status built per probe) in, an HTTP
status code and a small JSON body out.

| path      | 200 when                                                           | otherwise |
|-----------|--------------------------------------------------------------------|-----------|
| `/writer` | Milvus runs rw here, healthy, and this node holds a valid rw lease | 503       |
| `/reader` | Milvus runs ro here, healthy                                       | 503       |
| `/health` | Milvus runs healthy here, in either role                           | 503       |

"Healthy" is what the agent's last cycle saw: the container answered `GET /state` and the convergence table had
nothing to do (`role_running`). A writer whose lease has lapsed is never named (it is being fenced).
"""

from __future__ import annotations

import json
from typing import Any

from agent.snapshot import NodeSnapshot

PATHS = ("/writer", "/reader", "/health")


def lb_answer(path: str, node: str, seen: NodeSnapshot, holds_writer_lease: bool) -> tuple[int, bytes]:
    """(HTTP status, JSON body) for one of PATHS; `seen` is the loop's last published observation,
    `holds_writer_lease` whether a rw container may run now under its assignment."""
    role = seen.role_running or "none"
    body: dict[str, Any] = {"node": node, "role": role, "epoch": seen.assignment.epoch}
    if path == "/writer":
        ok = role == "rw" and holds_writer_lease
        body["lease_valid"] = holds_writer_lease
        why = "" if ok else ("it holds no valid rw lease" if role == "rw" else _not_running("rw", role))
    elif path == "/reader":
        ok = role == "ro"
        why = "" if ok else _not_running("ro", role)
    elif path == "/health":
        ok = role in ("rw", "ro")
        why = "" if ok else "no Milvus runs healthy here"
    else:
        raise ValueError(f"not a load balancer path: {path}")
    body["ok"] = ok
    if why:
        body["why"] = why
    return (200 if ok else 503), (json.dumps(body, sort_keys=True) + "\n").encode()


def _not_running(wanted: str, role: str) -> str:
    return f"no Milvus runs {wanted} healthy here (running: {role})"
