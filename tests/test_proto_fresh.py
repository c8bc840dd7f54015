"""The generated modules in proto/ must be what scripts/gen-proto makes from the .proto files today."""

import filecmp
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GENERATED = REPO / "proto" / "jfsmilvus" / "v1"


def test_generated_modules_match_the_proto_files(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHON=sys.executable)
    subprocess.run([str(REPO / "scripts" / "gen-proto"), str(tmp_path)], check=True, env=env, cwd=REPO)
    fresh = tmp_path / "jfsmilvus" / "v1"
    made = sorted(p.name for p in fresh.iterdir())
    assert made, "scripts/gen-proto generated nothing"
    committed = sorted(p.name for p in GENERATED.iterdir() if p.name.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")))
    assert committed == made, "generated module set differs: run scripts/gen-proto and commit"
    stale = [name for name in made if not filecmp.cmp(fresh / name, GENERATED / name, shallow=False)]
    assert not stale, f"stale generated modules {stale}: run scripts/gen-proto and commit the result"


def test_wire_contract_round_trips() -> None:
    from jfsmilvus.v1 import coordinator_pb2, node_pb2

    assignment = node_pb2.Assignment(role=node_pb2.ROLE_RW, epoch=7, lease_ms=5000, writer="node-a")
    answer = coordinator_pb2.ReportResponse(leader=True, assignment=assignment)
    again = coordinator_pb2.ReportResponse.FromString(answer.SerializeToString())
    assert again.assignment.role == node_pb2.ROLE_RW
    assert again.assignment.epoch == 7
