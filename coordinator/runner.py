"""`jfs-milvus-coordinator run`: the daemon's process: tick loop, API, metrics, signals, systemd notify."""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from jfsmilvus.common.logsetup import LogContext, configure_logging
from jfsmilvus.common.metricsserver import MetricsServer
from jfsmilvus.common.sdnotify import notify, watchdog_interval_s

from coordinator.config import CoordinatorConfig
from coordinator.daemon import Coordinator
from coordinator.metrics import render_coordinator_metrics
from coordinator.publishing import redis_publisher
from coordinator.push import AssignmentPusher
from coordinator.server import serve
from coordinator.storeapi import StoreError

log = logging.getLogger("jfs_milvus.coordinator")


def run_coordinator(config: CoordinatorConfig) -> int:
    context = LogContext(node=config.coordinator_id, role="follower")
    configure_logging(context, config.log_level)
    publish = None
    if config.publish.redis_url:
        password = config.publish.password.load().reveal() if config.publish.password else None
        publish = redis_publisher(config.publish.redis_url, password, config.publish.channel)
    coordinator = Coordinator(
        config, publish=publish, push=AssignmentPusher(config.coordinator_id, config.tls), log_context=context
    )
    while True:
        try:
            version = coordinator.store.migrate()
            break
        except StoreError as exc:
            log.error("cannot prepare the MySQL schema, retrying in 2s: %s", exc)
            time.sleep(2)
    log.info("MySQL schema at version %d; cluster %s", version, config.cluster)
    stop = threading.Event()

    def on_term(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    api = serve(coordinator, config)
    metrics = MetricsServer(
        config.listen_host, config.metrics_port, lambda: render_coordinator_metrics(coordinator, process=True)
    )
    metrics.start()
    notify("READY=1")
    watchdog = watchdog_interval_s()
    last_ping = 0.0
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                coordinator.tick()
            except Exception:  # the loop must survive anything one tick throws
                log.exception("tick failed; continuing")
            if watchdog is not None and time.monotonic() - last_ping >= watchdog / 2:
                notify("WATCHDOG=1")
                last_ping = time.monotonic()
            stop.wait(max(0.0, config.tick_s - (time.monotonic() - started)))
    finally:
        notify("STOPPING=1")
        if coordinator.leadership is not None:
            try:
                coordinator.store.release(coordinator.leadership)
                log.info("released the leadership so another coordinator can take over at once")
            except StoreError as exc:
                log.error("could not release the leadership: %s", exc)
        api.stop(grace=1).wait(2)
        metrics.stop()
    return 0
