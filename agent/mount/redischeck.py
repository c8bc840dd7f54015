"""Reachability, latency and safety settings of a Redis metadata engine (redis-py, bounded by socket timeouts)."""

from __future__ import annotations

import time
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from agent.mount.health import MetaObservation

REDIS_SCHEMES = ("redis", "rediss", "unix")


def check_redis(meta_url: str, password: str | None, timeout_s: float) -> MetaObservation:
    """PING the engine and read its maxmemory-policy; `password` goes to redis-py only."""
    parts = urlsplit(meta_url)
    if parts.scheme not in REDIS_SCHEMES:
        return MetaObservation(error=f"{parts.scheme} engines are not checked")
    if "," in parts.netloc:
        return MetaObservation(error="Redis Sentinel/Cluster META-URLs are not checked")
    kwargs: dict[str, object] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "password": password if password is not None else (unquote(parts.password) if parts.password else None),
        "username": unquote(parts.username) if parts.username else None,
        "retry": Retry(NoBackoff(), 0),
        "decode_responses": True,
    }
    try:
        if parts.scheme == "unix":
            kwargs["unix_socket_path"] = parts.path
            kwargs["db"] = 0
        else:
            kwargs["host"] = parts.hostname or "127.0.0.1"
            kwargs["port"] = parts.port or 6379
            db = parts.path.strip("/")
            kwargs["db"] = int(db) if db else 0
            kwargs["ssl"] = parts.scheme == "rediss"
    except ValueError as exc:
        return MetaObservation(reachable=False, error=f"bad META-URL: {exc}")
    client = redis.Redis(**kwargs)  # type: ignore[arg-type]
    try:
        start = time.monotonic()
        client.ping()
        latency = (time.monotonic() - start) * 1000.0
        warnings: list[str] = []
        policy = _config_get(client, "maxmemory-policy", warnings)
        if policy is not None and policy != "noeviction":
            warnings.append(f"Redis maxmemory-policy is {policy}, not noeviction: it may evict JuiceFS metadata")
        if kwargs["password"] is None:
            protected = _config_get(client, "protected-mode", warnings)
            note = " (protected mode is on: it refuses clients from other hosts)" if protected == "yes" else ""
            warnings.append(f"Redis accepts clients without a password{note}")
        return MetaObservation(
            reachable=True, latency_ms=round(latency, 3), maxmemory_policy=policy, warnings=tuple(warnings)
        )
    except redis.exceptions.RedisError as exc:
        return MetaObservation(reachable=False, error=f"{type(exc).__name__}: {exc}")
    except OSError as exc:
        return MetaObservation(reachable=False, error=f"{type(exc).__name__}: {exc}")
    finally:
        client.close()


def _config_get(client: redis.Redis, key: str, warnings: list[str]) -> str | None:
    try:
        value = client.config_get(key).get(key)
    except redis.exceptions.ResponseError as exc:
        warnings.append(f"cannot read Redis {key}: {exc}")
        return None
    return str(value) if value is not None else None
