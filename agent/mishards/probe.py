"""Does a Milvus 1.x server answer its gRPC? `Cmd version` with a short deadline, as Mishards probes at start.

The request and reply are encoded by hand (milvus.proto's `Command {string cmd = 1}` and
`StringReply {Status status = 1; string string_reply = 2}`, `Status {int32 error_code = 1; string reason = 2}`),
so the agent needs no copy of Milvus's generated modules.
"""

from __future__ import annotations

import grpc

CMD_METHOD = "/milvus.grpc.MilvusService/Cmd"
VERSION_REQUEST = b"\x0a\x07version"  # field 1, length 7, "version"


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> dict[int, bytes | int]:
    """The last value of each field of a protobuf message (varint and length-delimited wire types only)."""
    out: dict[int, bytes | int] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            out[number], pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            out[number] = data[pos : pos + length]
            pos += length
        else:
            raise ValueError(f"unexpected wire type {wire}")
    return out


def parse_version_reply(data: bytes) -> tuple[int, str]:
    """(Status.error_code, string_reply) of a StringReply."""
    fields = _fields(data)
    status = fields.get(1, b"")
    code = _fields(status).get(1, 0) if isinstance(status, bytes) else 0
    reply = fields.get(2, b"")
    return int(code) if isinstance(code, int) else 0, reply.decode() if isinstance(reply, bytes) else ""


def milvus_answers(host: str, port: int, timeout_s: float) -> str | None:
    """None when `host:port` answers `Cmd version` within `timeout_s`; otherwise why not, in one line."""
    target = f"{host}:{port}"
    channel = grpc.insecure_channel(target)
    try:
        call = channel.unary_unary(CMD_METHOD)
        raw = call(VERSION_REQUEST, timeout=timeout_s)
        code, version = parse_version_reply(raw)
    except grpc.RpcError as exc:
        return f"Milvus at {target} did not answer Cmd version: {exc.code().name}"  # type: ignore[attr-defined]
    except (ValueError, IndexError) as exc:
        return f"Milvus at {target} answered Cmd version with something unreadable: {exc}"
    finally:
        channel.close()
    if code != 0:
        return f"Milvus at {target} answered Cmd version with error code {code}"
    return None if version else f"Milvus at {target} reported no version"
