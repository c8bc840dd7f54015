"""server_config.yaml for a role, as Milvus 1.x reads it: the operator's keys survive, the role's keys are set,
the password is raw in meta_uri, bind.address and logs.path are pinned, version 0.5 only, unknown keys warned."""

from __future__ import annotations

import re

import pytest
import yaml
from jfsmilvus.common.secrets import Secret

from agent.milvus.metauri import MetaUriError, meta_uri_with_password, parse_meta_uri
from agent.milvus.server_config import (
    BaseConfigError,
    RoleSettings,
    base_config_warnings,
    parse_base_config,
    render_server_config,
    role_of_rendered,
)

# core/src/db/Utils.cpp ParseMetaUri (and utils/ValidationUtil.cpp ValidateDbURI): greedy, no URL decoding.
MILVUS_REGEX = r"(.*)://(.*):(.*)@(.*):(.*)/(.*)"
HARD_PASSWORD = "p@ss!#/%w@rd/%21"  # every character Milvus's regex or a YAML writer could trip on, but ':'

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


def settings(role: str = "ro", gpu_count: int | None = 2, password: str = HARD_PASSWORD) -> RoleSettings:
    return RoleSettings(
        role=role,
        meta_uri=parse_meta_uri("mysql://milvus@10.0.0.5:3306/milvus"),
        meta_password=Secret(password),
        port=19530,
        http_port=19121,
        gpu_count=gpu_count,
    )


def render(base: str = BASE, **kw: object) -> dict:
    return yaml.safe_load(render_server_config(parse_base_config(base, "base.yaml"), settings(**kw)))  # type: ignore[arg-type]


@pytest.mark.parametrize("role", ["rw", "ro"])
def test_role_keys_are_set_and_operator_keys_kept(role: str) -> None:
    out = render(role=role)
    assert out["version"] == 0.5
    assert out["cluster"] == {"enable": True, "role": role}
    assert out["general"]["timezone"] == "UTC+8"
    assert out["cache"] == {"cache_size": "4GB"}
    assert out["storage"]["auto_flush_interval"] == 1
    wal = {"enable": True, "buffer_size": "256MB", "path": "/var/lib/milvus/wal"}
    assert out["wal"] == {**wal, **({"recovery_error_ignore": True} if role == "rw" else {"enable": False})}
    assert out["gpu"]["cache_size"] == "1GB"
    assert out["gpu"]["search_devices"] == ["gpu0", "gpu1"]
    assert out["gpu"]["build_index_devices"] == ["gpu0", "gpu1"]


def test_bind_address_is_always_all_interfaces_inside_the_container() -> None:
    """A host IP inside the container makes Milvus's gRPC bind fail and the server segfault
    (server/grpc_impl/GrpcServer.cpp); the node address is applied by the port publishing."""
    out = render()  # the base says bind.address: 10.0.0.11
    assert out["network"] == {"bind.address": "0.0.0.0", "bind.port": 19530, "http.enable": True, "http.port": 19121}
    (warning,) = [w for w in base_config_warnings(parse_base_config(BASE, "base.yaml"), "base.yaml") if "bind" in w]
    assert "base.yaml" in warning and "'10.0.0.11'" in warning and "'0.0.0.0'" in warning


def test_a_reader_runs_without_a_wal() -> None:
    """With wal.enable false DBImpl::Start runs no WAL init and no replay (db/DBImpl.cpp:128-147): a former
    writer restarted as a reader cannot replay its old WAL, nor fail on another node's LSNs."""
    out = render(role="ro")  # the base says enable: true
    assert out["wal"]["enable"] is False and "recovery_error_ignore" not in out["wal"]
    assert render(BASE.replace("wal:\n  enable: true\n", "wal:\n"), role="ro")["wal"]["enable"] is False


@pytest.mark.parametrize("given", ["false", "False", "off", "no", "0", "'false'"])
def test_a_writer_ignores_wal_recovery_errors_whatever_the_base_says(given: str) -> None:
    """A new writer's WAL is empty while MySQL's LSNs are the last writer's: with false Milvus refuses to start
    (db/wal/WalManager.cpp:126-133); with true it resets to MySQL's highest LSN (:128-130)."""
    base_text = BASE.replace("wal:\n  enable: true\n", f"wal:\n  enable: true\n  recovery_error_ignore: {given}\n")
    out = render(base_text, role="rw")
    assert out["wal"]["recovery_error_ignore"] is True and out["wal"]["enable"] is True
    warnings = [w for w in base_config_warnings(parse_base_config(base_text, "base.yaml"), "base.yaml") if "wal" in w]
    (warning,) = warnings
    assert warning.startswith("base.yaml: wal.recovery_error_ignore = ") and "rendered true for the writer" in warning


def test_a_base_that_already_ignores_wal_recovery_errors_is_not_warned_about() -> None:
    base_text = BASE.replace("wal:\n  enable: true\n", "wal:\n  enable: true\n  recovery_error_ignore: true\n")
    assert not [w for w in base_config_warnings(parse_base_config(base_text, "b"), "b") if "recovery" in w]
    assert not [w for w in base_config_warnings(parse_base_config(BASE, "b"), "b") if "recovery" in w]  # unset


def test_auto_flush_off_is_warned_about() -> None:
    base_text = BASE.replace("auto_flush_interval: 1", "auto_flush_interval: 0")
    (warning,) = [w for w in base_config_warnings(parse_base_config(base_text, "b"), "b") if "auto_flush" in w]
    assert "failover loses" in warning


def test_logs_path_is_the_logs_volume() -> None:
    assert render()["logs"] == {"path": "/var/lib/milvus/logs"}  # Milvus's default is /tmp/milvus/logs
    kept = render(BASE + "logs:\n  level: info\n  path: /tmp/milvus/logs\n")["logs"]
    assert kept == {"level": "info", "path": "/var/lib/milvus/logs"}


def test_meta_uri_carries_the_password_raw_as_milvus_parses_it() -> None:
    uri = render()["general"]["meta_uri"]
    assert uri == f"mysql://milvus:{HARD_PASSWORD}@10.0.0.5:3306/milvus"
    match = re.fullmatch(MILVUS_REGEX, uri)
    assert match is not None
    assert match.groups() == ("mysql", "milvus", HARD_PASSWORD, "10.0.0.5", "3306", "milvus")


@pytest.mark.parametrize("password", ["!#@/%", "a@b@c", "/%2F%40", "#not a comment", "%", "x" * 64, "q//w"])
def test_a_raw_password_round_trips_through_milvus_regex(password: str) -> None:
    uri = meta_uri_with_password(parse_meta_uri("mysql://jfs_milvus@db.example:3307/milvus_1"), Secret(password))
    match = re.fullmatch(MILVUS_REGEX, uri)
    assert match is not None and match.groups() == ("mysql", "jfs_milvus", password, "db.example", "3307", "milvus_1")


@pytest.mark.parametrize("password", ["pa:ss", "x:y:z", "", "mysql://x"])
def test_a_password_milvus_cannot_parse_is_refused_without_showing_it(password: str) -> None:
    with pytest.raises(MetaUriError) as raised:
        meta_uri_with_password(parse_meta_uri("mysql://milvus@10.0.0.5:3306/milvus"), Secret(password))
    message = str(raised.value)
    assert "':'" in message or "empty" in message
    assert password == "" or password not in message


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("mysql://milvus@10.0.0.5/milvus", "no port"),
        ("mysql://milvus:pw@10.0.0.5:3306/milvus", "must not carry a password"),
        ("mysql://10.0.0.5:3306/milvus", "must look like"),
        ("mysql://@10.0.0.5:3306/milvus", "no MySQL user"),
        ("mysql://milvus@:3306/milvus", "no host"),
        ("mysql://milvus@10.0.0.5:port/milvus", "port must be a number"),
        ("mysql://milvus@10.0.0.5:3306/", "one database name"),
        ("mysql://milvus@10.0.0.5:3306/a/b", "one database name"),
        ("mysql://milvus@10.0.0.5:3306/milvus?charset=utf8", "one database name"),
        ("sqlite://milvus@10.0.0.5:3306/milvus", "scheme must be mysql"),
    ],
)
def test_a_meta_uri_milvus_cannot_use_is_refused_with_the_rule(uri: str, words: str) -> None:
    with pytest.raises(MetaUriError, match=re.escape(words)):
        parse_meta_uri(uri)


def test_the_user_may_hold_an_at_sign() -> None:
    uri = meta_uri_with_password(parse_meta_uri("mysql://ops@corp@10.0.0.5:3306/milvus"), Secret("pw"))
    assert re.fullmatch(MILVUS_REGEX, uri).groups()[1:3] == ("ops@corp", "pw")  # type: ignore[union-attr]


def test_no_healthy_gpu_turns_gpu_off_and_none_leaves_the_section_alone() -> None:
    base = parse_base_config(BASE, "b")
    assert yaml.safe_load(render_server_config(base, settings(gpu_count=0)))["gpu"]["enable"] is False
    untouched = yaml.safe_load(render_server_config(base, settings(gpu_count=None)))["gpu"]
    assert untouched["search_devices"] == ["gpu0"]


def test_an_empty_base_still_gives_a_complete_config() -> None:
    out = render("", role="rw")
    assert out["version"] == 0.5 and out["cluster"]["role"] == "rw"
    assert out["network"] == {"bind.address": "0.0.0.0", "bind.port": 19530, "http.enable": True, "http.port": 19121}
    assert out["logs"]["path"] == "/var/lib/milvus/logs"
    assert role_of_rendered(render_server_config({}, settings("rw"))) == "rw"


@pytest.mark.parametrize("text", ["- a\n- b\n", "cluster: [1]\n", "cluster: {role: rw\n"])
def test_a_broken_base_is_refused_with_the_path(text: str) -> None:
    with pytest.raises(BaseConfigError, match=r"base\.yaml"):
        parse_base_config(text, "base.yaml")


@pytest.mark.parametrize("version", ["0.4", "0.5.0", "1.0", "0.4 # 0.9 layout", "true"])
def test_a_base_version_other_than_0_5_is_refused_naming_file_key_value_and_rule(version: str) -> None:
    with pytest.raises(BaseConfigError) as raised:
        parse_base_config(f"version: {version}\n", "/etc/jfs-milvus/server_config.yaml")
    message = str(raised.value)
    value = yaml.safe_load(f"v: {version}")["v"]
    assert message.startswith("/etc/jfs-milvus/server_config.yaml: version = ")
    assert repr(value) in message and "only config version 0.5" in message


@pytest.mark.parametrize("version", ["0.5", "'0.5'", "0.50"])
def test_version_0_5_as_a_number_or_a_string_is_accepted(version: str) -> None:
    out = yaml.safe_load(render_server_config(parse_base_config(f"version: {version}\n", "b"), settings()))
    assert str(out["version"]) == "0.5"


def test_keys_milvus_ignores_are_warned_about_with_a_did_you_mean_and_kept() -> None:
    text = BASE + (
        "metrics:\n  enable: true\n"  # the section is "metric"
        "engine_config:\n  use_blas_threshold: 1100\n  omp_thread_nums: 4\n"
        "standin:\n  start_delay_s: 2\n"  # a test stand-in's own knobs: never warned about
        "tracing_config:\n  json_config_path: ''\n"
    )
    text = text.replace(
        "  cache_size: 4GB\n", "  cache_size: 4GB\n  insert_buffer_sise: 1GB\n  cache_insert_data: false\n"
    )
    text = text.replace("  http.port: 19121\n", "  http.port: 19121\n  bind:\n    port: 19530\n")
    base = parse_base_config(text, "base.yaml")
    warnings = [w for w in base_config_warnings(base, "base.yaml") if "not one Milvus 1.x reads" in w]
    assert len(warnings) == 4, warnings
    by_key = {w.split("'")[1]: w for w in warnings}
    assert "did you mean 'metric'?" in by_key["metrics"]
    assert "did you mean 'omp_thread_num'?" in by_key["engine_config.omp_thread_nums"]
    assert "did you mean 'insert_buffer_size'?" in by_key["cache.insert_buffer_sise"]
    assert "flat dotted keys: write 'bind.address: ...'" in by_key["network.bind"]
    assert all(w.startswith("base.yaml: ") for w in warnings)
    out = yaml.safe_load(render_server_config(base, settings()))
    assert out["metrics"] == {"enable": True} and out["engine_config"]["omp_thread_nums"] == 4  # kept all the same
    assert out["standin"] == {"start_delay_s": 2}


def test_the_1x_templates_raise_no_warning() -> None:
    template = (
        "version: 0.5\ncluster: {enable: false, role: rw}\ngeneral: {timezone: UTC+8, meta_uri: 'sqlite://:@:/'}\n"
        "network: {bind.address: 0.0.0.0, bind.port: 19530, http.enable: true, http.port: 19121}\n"
        "storage: {path: /var/lib/milvus, auto_flush_interval: 1}\n"
        "wal: {enable: true, recovery_error_ignore: false, buffer_size: 256MB, path: /var/lib/milvus/wal}\n"
        "cache: {cache_size: 4GB, insert_buffer_size: 1GB, preload_collection: null}\n"
        "gpu: {enable: true, cache_size: 1GB, gpu_search_threshold: 1000, search_devices: [gpu0],"
        " build_index_devices: [gpu0]}\n"
        "fpga: {enable: false, search_devices: [fpga0]}\n"
        "logs: {level: debug, trace.enable: true, path: /var/lib/milvus/logs, max_log_file_size: 1024MB,"
        " log_rotate_num: 0, log_to_stdout: false, log_to_file: true}\n"
        "metric: {enable: false, address: 127.0.0.1, port: 9091}\n"
    )
    warnings = base_config_warnings(parse_base_config(template, "t"), "t")
    assert [w.split(" = ")[0] for w in warnings] == ["t: wal.recovery_error_ignore"]  # rendered true for the writer


def test_a_role_other_than_rw_or_ro_is_refused() -> None:
    with pytest.raises(ValueError, match="role"):
        render_server_config({}, settings("master"))
