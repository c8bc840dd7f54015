"""Reachability, latency and safety settings of a Redis metadata engine, bounded by socket timeouts."""

from __future__ import annotations

import contextlib
import time
from urllib.parse import urlsplit

from agent.mount.health import MetaObservation
from agent.mount.resp import RespConnection, RespError

REDIS_SCHEMES = ("redis", "rediss", "unix")


def check_redis(meta_url: str, password: str | None, timeout_s: float) -> MetaObservation:
    """PING the engine and read its maxmemory-policy; `password` goes to the connection only."""
    parts = urlsplit(meta_url)
    if parts.scheme not in REDIS_SCHEMES:
        return MetaObservation(error=f"{parts.scheme} engines are not checked")
    if "," in parts.netloc:
        return MetaObservation(error="Redis Sentinel/Cluster META-URLs are not checked")
    try:
        conn = RespConnection.open(meta_url, password, timeout_s)
    except ValueError as exc:
        return MetaObservation(reachable=False, error=f"bad META-URL: {exc}")
    except RespError as exc:
        return MetaObservation(reachable=False, error=f"AuthenticationError: {exc}")
    except OSError as exc:
        return MetaObservation(reachable=False, error=f"{type(exc).__name__}: {exc}")
    try:
        start = time.monotonic()
        conn.command("PING")
        latency = (time.monotonic() - start) * 1000.0
        warnings: list[str] = []
        policy = _config_get(conn, "maxmemory-policy", warnings)
        if policy is not None and policy != "noeviction":
            warnings.append(f"Redis maxmemory-policy is {policy}, not noeviction: it may evict JuiceFS metadata")
        if password is None and not parts.password:
            protected = _config_get(conn, "protected-mode", warnings)
            note = " (protected mode is on: it refuses clients from other hosts)" if protected == "yes" else ""
            warnings.append(f"Redis accepts clients without a password{note}")
        return MetaObservation(
            reachable=True, latency_ms=round(latency, 3), maxmemory_policy=policy, warnings=tuple(warnings)
        )
    except RespError as exc:
        return MetaObservation(reachable=False, error=f"ResponseError: {exc}")
    except OSError as exc:
        return MetaObservation(reachable=False, error=f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def _config_get(conn: RespConnection, key: str, warnings: list[str]) -> str | None:
    try:
        reply = conn.command("CONFIG", "GET", key)
    except RespError as exc:
        warnings.append(f"cannot read Redis {key}: {exc}")
        return None
    if isinstance(reply, list) and len(reply) >= 2:
        return str(reply[1])
    return None


class RedisEngineCheck:
    """`check_redis` for one volume, run every cycle: one connection kept open for the PING, and the
    settings (maxmemory-policy, protected mode) read again every 10 s, not every second."""

    SETTINGS_EVERY_S = 10.0

    def __init__(self, meta_url: str):
        self.meta_url = meta_url
        self._conn: RespConnection | None = None
        self._settings: tuple[float, str | None, tuple[str, ...]] | None = None

    def check(self, password: str | None, timeout_s: float) -> MetaObservation:
        if self._conn is None or self._settings is None or time.monotonic() - self._settings[0] > self.SETTINGS_EVERY_S:
            self.close()
            full = check_redis(self.meta_url, password, timeout_s)
            if full.reachable:
                self._settings = (time.monotonic(), full.maxmemory_policy, full.warnings)
                try:
                    self._conn = RespConnection.open(self.meta_url, password, timeout_s)
                except (OSError, RespError, ValueError):
                    self._conn = None
            return full
        try:
            start = time.monotonic()
            self._conn.command("PING")
            latency = (time.monotonic() - start) * 1000.0
        except (OSError, RespError) as exc:
            self.close()
            return MetaObservation(reachable=False, error=f"{type(exc).__name__}: {exc}")
        _, policy, warnings = self._settings
        return MetaObservation(reachable=True, latency_ms=round(latency, 3), maxmemory_policy=policy, warnings=warnings)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
        self._conn = None
