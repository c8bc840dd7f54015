"""The Redis metadata engine check against real redis-servers (no FUSE needed)."""

from __future__ import annotations

from collections.abc import Callable

from agent.config import JuicefsSettings, VolumeSettings
from agent.mount import MountManager
from agent.mount.redischeck import check_redis
from tests.plugin_juicefs import REDIS_PASSWORD, RedisServer


def test_reachable_with_latency(redis_server: RedisServer) -> None:
    obs = check_redis(redis_server.url(3), REDIS_PASSWORD, 1.0)
    assert obs.reachable is True and obs.latency_ms is not None and obs.latency_ms < 1000
    assert obs.maxmemory_policy == "noeviction" and obs.warnings == ()


def test_maxmemory_policy_other_than_noeviction_warns(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory()
    server.client().config_set("maxmemory-policy", "allkeys-lru")
    obs = check_redis(server.url(1), REDIS_PASSWORD, 1.0)
    assert obs.reachable is True and obs.maxmemory_policy == "allkeys-lru"
    assert any("allkeys-lru" in w and "noeviction" in w for w in obs.warnings)


def test_no_password_warns_with_protected_mode(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory(password=None)
    obs = check_redis(server.url(1), None, 1.0)
    assert obs.reachable is True
    assert any("without a password" in w and "protected mode is on" in w for w in obs.warnings), obs.warnings


def test_wrong_password_is_unreachable_and_not_echoed(redis_server: RedisServer) -> None:
    obs = check_redis(redis_server.url(1), "not-the-password", 1.0)
    assert obs.reachable is False and obs.error and "not-the-password" not in obs.error


def test_stopped_and_restarted(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory()
    server.client(1).set("k", "v")
    server.stop(save=True)
    obs = check_redis(server.url(1), REDIS_PASSWORD, 0.5)
    assert obs.reachable is False and obs.error and "Connection" in obs.error
    server.start()
    assert server.client(1).get("k") == b"v"
    assert check_redis(server.url(1), REDIS_PASSWORD, 0.5).reachable is True


def test_observe_reports_the_engine_of_an_unmounted_volume(
    redis_factory: Callable[..., RedisServer],
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    server = redis_factory(password=None)
    server.client().config_set("maxmemory-policy", "volatile-lru")
    volume = VolumeSettings(name="v1", meta_url=server.url(1), mountpoint=str(tmp_path / "mnt"))
    settings = JuicefsSettings(fstab=str(tmp_path / "fstab"), probe_timeout_s=1.0, volumes=(volume,))
    d = MountManager(volume, settings, "n").observe().to_dict()
    assert d["state"] == "unmounted" and d["mounted"] is False and d["configured_in_fstab"] is False
    assert d["meta_engine"]["maxmemory_policy"] == "volatile-lru" and len(d["meta_engine"]["warnings"]) == 2


def test_non_redis_engines_are_not_checked() -> None:
    obs = check_redis("mysql://u@(h:3306)/jfs", None, 0.5)
    assert obs.reachable is None and obs.error
