"""server_config.yaml for a role: the operator's keys survive, the role's keys are set, the password is encoded."""

from __future__ import annotations

import pytest
import yaml

from agent.milvus.server_config import (
    BaseConfigError,
    RoleSettings,
    parse_base_config,
    render_server_config,
    role_of_rendered,
)
from agent.secrets import Secret

BASE = """
version: 0.5
cluster:
  enable: false
  role: rw
general:
  timezone: UTC+8
  meta_uri: sqlite://:@:/
network:
  bind.address: 10.0.0.11
  bind.port: 19530
  http.enable: false
  http.port: 19121
storage:
  path: /var/lib/milvus
  auto_flush_interval: 1
wal:
  enable: true
  buffer_size: 256MB
  path: /var/lib/milvus/db/wal
cache:
  cache_size: 4GB
gpu:
  enable: true
  cache_size: 1GB
  search_devices: [gpu0]
  build_index_devices: [gpu0]
"""


def settings(role: str = "ro", gpu_count: int | None = 2) -> RoleSettings:
    return RoleSettings(
        role=role,
        meta_uri="mysql://milvus@10.0.0.5:3306/milvus",
        meta_password=Secret("p@ss:w/rd"),
        port=19530,
        http_port=19121,
        gpu_count=gpu_count,
    )


@pytest.mark.parametrize("role", ["rw", "ro"])
def test_role_keys_are_set_and_operator_keys_kept(role: str) -> None:
    out = yaml.safe_load(render_server_config(parse_base_config(BASE, "base.yaml"), settings(role)))
    assert out["cluster"] == {"enable": True, "role": role}
    assert out["general"]["timezone"] == "UTC+8"
    assert out["network"] == {"bind.address": "10.0.0.11", "bind.port": 19530, "http.enable": True, "http.port": 19121}
    assert out["cache"] == {"cache_size": "4GB"}
    assert out["storage"]["auto_flush_interval"] == 1
    assert out["wal"] == {"enable": True, "buffer_size": "256MB", "path": "/var/lib/milvus/wal"}
    assert out["gpu"]["cache_size"] == "1GB"
    assert out["gpu"]["search_devices"] == ["gpu0", "gpu1"]
    assert out["gpu"]["build_index_devices"] == ["gpu0", "gpu1"]


def test_meta_uri_carries_the_password_url_encoded() -> None:
    out = yaml.safe_load(render_server_config(parse_base_config(BASE, "b"), settings()))
    assert out["general"]["meta_uri"] == "mysql://milvus:p%40ss%3Aw%2Frd@10.0.0.5:3306/milvus"


def test_no_healthy_gpu_turns_gpu_off_and_none_leaves_the_section_alone() -> None:
    base = parse_base_config(BASE, "b")
    assert yaml.safe_load(render_server_config(base, settings(gpu_count=0)))["gpu"]["enable"] is False
    untouched = yaml.safe_load(render_server_config(base, settings(gpu_count=None)))["gpu"]
    assert untouched["search_devices"] == ["gpu0"]


def test_an_empty_base_still_gives_a_complete_config() -> None:
    out = yaml.safe_load(render_server_config(parse_base_config("", "b"), settings("rw")))
    assert out["cluster"]["role"] == "rw"
    assert out["network"] == {"bind.address": "0.0.0.0", "bind.port": 19530, "http.enable": True, "http.port": 19121}
    assert role_of_rendered(render_server_config({}, settings("rw"))) == "rw"


@pytest.mark.parametrize("text", ["- a\n- b\n", "cluster: [1]\n", "cluster: {role: rw\n"])
def test_a_broken_base_is_refused_with_the_path(text: str) -> None:
    with pytest.raises(BaseConfigError, match=r"base\.yaml"):
        parse_base_config(text, "base.yaml")


def test_a_role_other_than_rw_or_ro_is_refused() -> None:
    with pytest.raises(ValueError, match="role"):
        render_server_config({}, settings("master"))
