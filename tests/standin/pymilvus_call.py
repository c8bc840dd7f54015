"""Run pymilvus 1.x calls against one Milvus (or stand-in) and print their answers as JSON (tests only).

Runs in .venv-milvus1 (pymilvus 1.0.1 needs protobuf 3), imports nothing of the project:

    .venv-milvus1/bin/python tests/standin/pymilvus_call.py HOST PORT TIMEOUT_S < calls.json

stdin: a JSON list of calls `[method, arg, ...]`, run in order on one connection; stdout: a JSON list with, for
each call, `{"code": <Status.code>, "message": ..., "value": ...}`, or `{"error": "<exception>"}` when pymilvus
raised (a timeout, a refused connection). Methods are pymilvus's `Milvus` methods; `vectors` come as lists.
"""

import json
import sys


def _plain(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "id_array") and hasattr(value, "distance_array"):  # TopKQueryResult
        return {"ids": [list(r) for r in value.id_array], "distances": [list(r) for r in value.distance_array]}
    if hasattr(value, "dimension") and hasattr(value, "collection_name"):  # CollectionSchema
        return {k: _plain(getattr(value, k)) for k in ("collection_name", "dimension", "index_file_size")} | {
            "metric_type": int(getattr(value.metric_type, "value", value.metric_type))
        }
    if hasattr(value, "value"):  # an enum
        return _plain(value.value)
    return repr(value)


def main() -> int:
    host, port, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    calls = json.load(sys.stdin)
    from milvus import Milvus

    out = []
    try:
        client = Milvus(host=host, port=port, pool_size=1, try_connect=False)
    except Exception as exc:
        print(json.dumps([{"error": f"{type(exc).__name__}: {exc}"}] * len(calls)))
        return 0
    for method, *args in calls:
        try:
            answer = getattr(client, method)(*args, timeout=timeout)
        except Exception as exc:
            out.append({"error": f"{type(exc).__name__}: {exc}"})
            continue
        status, value = answer if isinstance(answer, tuple) else (answer, None)
        code = getattr(status, "code", -1)
        if not isinstance(code, int):  # a gRPC failure (deadline, unavailable) comes back as a Status too
            out.append({"error": f"{code}: {getattr(status, 'message', '')}"})
            continue
        out.append(
            {
                "code": int(getattr(status, "code", -1)),
                "message": getattr(status, "message", ""),
                "value": _plain(value),
            }
        )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
