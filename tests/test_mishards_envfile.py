"""The Mishards env file: right keys, refused bad values, the operator's lines kept."""

from __future__ import annotations

import pytest
from jfsmilvus.common.secrets import Secret

from agent.mishards.envfile import (
    MishardsDiscovery,
    MishardsEnvError,
    owned_values,
    parse_env_values,
    render_env_file,
)

URI = "mysql+pymysql://root@10.0.0.5:3306/milvus?charset=utf8mb4"


def values(hosts: tuple[str, ...] = ("10.0.0.12", "10.0.0.13"), writer: str = "10.0.0.11") -> dict[str, str]:
    return owned_values(MishardsDiscovery(writer, 19530, hosts), 19531, URI, Secret("s3cret'\"#"))


def test_fresh_file_has_every_key_mishards_needs() -> None:
    got = parse_env_values(render_env_file(None, values()))
    assert got == {
        "WOSERVER": "tcp://10.0.0.11:19530",
        "DISCOVERY_CLASS_NAME": "static",
        "DISCOVERY_STATIC_HOSTS": "10.0.0.12,10.0.0.13",
        "DISCOVERY_STATIC_PORT": "19530",
        "SERVER_PORT": "19531",
        "SQLALCHEMY_DATABASE_URI": "mysql+pymysql://root:s3cret%27%22%23@10.0.0.5:3306/milvus?charset=utf8mb4",
    }


def test_operator_lines_are_kept_byte_for_byte_and_ours_replaced_in_place() -> None:
    existing = "# my notes\nDEBUG=True\nWOSERVER=tcp://10.0.0.99:19530\n\nTRACER_CLASS_NAME=jaeger\nWOSERVER=old\n"
    out = render_env_file(existing, values())
    lines = out.splitlines()
    assert lines[:3] == ["# my notes", "DEBUG=True", "WOSERVER='tcp://10.0.0.11:19530'"]
    assert lines[3:5] == ["", "TRACER_CLASS_NAME=jaeger"]
    assert out.count("WOSERVER=") == 1
    assert render_env_file(out, values()) == out  # idempotent


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        (("10.0.0.12\nWOSERVER=tcp://evil:1",), "newline"),
        (('10.0.0.12"',), "quote"),
        (("10.0.0.12,10.0.0.13",), "comma"),
        (("fe80::1",), "IPv6"),
        (("::ffff:10.0.0.1",), "IPv6"),
        ((), "empty"),
        (("10.0.0.12", "10.0.0.12"), "twice"),
        (("bad_host!",), "neither an IPv4 address nor a host name"),
    ],
)
def test_bad_hosts_are_refused_with_a_clear_reason(hosts: tuple[str, ...], message: str) -> None:
    with pytest.raises(MishardsEnvError, match=message):
        values(hosts)


def test_bad_writer_is_refused() -> None:
    with pytest.raises(MishardsEnvError, match="writer address"):
        values(writer="10.0.0.11 ")
