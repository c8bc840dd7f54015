"""The load balancer's checks on the agent's HTTP port (issue 18): `/writer`, `/reader`, `/health`, on each role.

The pure answers table by table, then a real cluster (three agents, a coordinator, the stand-in Milvus): the
writer answers `/writer` 200 and the readers 503; cut off from everything, the old writer stops answering 200
once its lease lapses, and at no instant sampled do two nodes answer `/writer` 200.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from agent.assignment import Assignment
from agent.lbcheck import lb_answer
from agent.snapshot import NodeSnapshot
from tests.localcluster.cluster import ClusterNode, LocalCluster
from tests.plugin_agent import wait_until
from tests.test_cluster_failover import running_cluster


def seen(role: str, epoch: int = 3) -> NodeSnapshot:
    return NodeSnapshot(role_running=role, assignment=Assignment(role=role, epoch=epoch, source="test"))


@pytest.mark.parametrize(
    ("path", "role", "lease", "code", "why"),
    [
        ("/writer", "rw", True, 200, None),
        ("/writer", "rw", False, 503, "it holds no valid rw lease"),
        ("/writer", "ro", False, 503, "no Milvus runs rw healthy here (running: ro)"),
        ("/writer", "none", True, 503, "no Milvus runs rw healthy here (running: none)"),
        ("/reader", "ro", False, 200, None),
        ("/reader", "rw", True, 503, "no Milvus runs ro healthy here (running: rw)"),
        ("/reader", "none", False, 503, "no Milvus runs ro healthy here (running: none)"),
        ("/health", "rw", True, 200, None),
        ("/health", "ro", False, 200, None),
        ("/health", "none", False, 503, "no Milvus runs healthy here"),
    ],
)
def test_each_check_on_each_role(path: str, role: str, lease: bool, code: int, why: str | None) -> None:
    got, body = lb_answer(path, "node-a", seen(role), lease)
    answer = json.loads(body)
    assert got == code and answer.get("why") == why
    assert answer["ok"] is (code == 200) and answer["node"] == "node-a" and answer["role"] == role
    assert answer["epoch"] == 3


def test_an_unknown_path_is_not_a_check() -> None:
    with pytest.raises(ValueError, match="not a load balancer path"):
        lb_answer("/primary", "node-a", seen("rw"), True)


def check(node: ClusterNode, path: str) -> tuple[int, dict[str, object]]:
    url = f"http://{node.address}:{node.metrics_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except (urllib.error.URLError, OSError):
        return 0, {}


@pytest.mark.root
@pytest.mark.slow
def test_on_a_cluster_only_the_writer_answers_writer_and_never_two_at_once(
    local_cluster: Callable[..., LocalCluster],
) -> None:
    cluster, client = running_cluster(local_cluster)
    writer = cluster.wait_for_writer()
    readers = cluster.readers()
    code, body = check(writer, "/writer")
    assert code == 200 and body["lease_valid"] is True and body["role"] == "rw", body
    assert [check(writer, p)[0] for p in ("/reader", "/health")] == [503, 200]
    for reader in readers:
        assert [check(reader, p)[0] for p in ("/writer", "/reader", "/health")] == [503, 200, 200], reader.name
        assert check(reader, "/writer")[1]["why"] == "no Milvus runs rw healthy here (running: ro)"

    # Sample every node's /writer while the writer is cut off from everything and the coordinator fails over.
    samples: list[tuple[float, list[str]]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(
                (time.monotonic(), [n.name for n in cluster.nodes.values() if check(n, "/writer")[0] == 200])
            )
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        # Cut off from the coordinators, MySQL and its peers' probes of its Milvus, but not from the load
        # balancer: its agent still answers /writer, and must stop saying 200 once its lease lapses.
        cluster.cut_from_coordinator(writer)
        cluster.cut_from_mysql(writer)
        for port in (writer.milvus_port, writer.http_port):
            cluster.firewall.add("OUTPUT", "-d", writer.address, "-p", "tcp", "--dport", str(port), "-m", "cgroup",
                                 "!", "--cgroup", str(writer.classid), "-j", "DROP")  # fmt: skip
        new = cluster.wait_for_writer(60, other_than=writer.name)
        wait_until(lambda: check(new, "/writer")[0] == 200, 30, f"{new.name} to answer /writer")
        wait_until(lambda: any(names == [new.name] for _, names in samples), 30, "a sample with the new writer")
    finally:
        stop.set()
        sampler.join(timeout=10)
        cluster.heal()
    client.stop()
    both = [(t, names) for t, names in samples if len(names) > 1]
    assert not both, f"two nodes answered /writer 200 at once: {both[:3]}"
    # A round of samples started before the new writer answered may end after the wait saw it: not the last one,
    # but some sample must show the new writer alone, and it answers 200 now.
    assert any(names == [writer.name] for _, names in samples) and any(names == [new.name] for _, names in samples)
    assert check(new, "/writer")[0] == 200
    lapsed = next(t for t, names in samples if writer.name not in names)
    assert all(writer.name not in names for t, names in samples if t > lapsed), "the old writer said 200 again"
    print(f"[lb] /writer sampled {len(samples)} times over the failover: never two at once")
