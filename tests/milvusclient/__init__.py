"""The Milvus 1.x write client the local cluster's tests, chaos suite, demo and benchmark write with.

- `writer.py`: the client itself, a pymilvus 1.0.1 program run by `.venv-milvus1/bin/python` (pymilvus 1.0.1
  needs protobuf 3; the project's own environment has protobuf 7), standard library and pymilvus only;
- `protocol.py`: the JSON lines it and its parent exchange (stdlib only, imported by both sides);
- `child.py`: the parent's end (start it, send ops, hear events);
- `ledger.py`: what the parent keeps of the events (acknowledged, flushed) and the verdict against what a
  reader sees on the volume (flushed writes lost: a failure; acknowledged-unflushed lost: the RPO).
"""
