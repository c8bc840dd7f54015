"""`jfs-milvus-agent run`: the daemon's process: loop, API, metrics, signals, systemd notify."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from jfsmilvus.common.configschema import ConfigError
from jfsmilvus.common.logsetup import LogContext, configure_logging
from jfsmilvus.common.metricsserver import MetricsServer
from jfsmilvus.common.sdnotify import notify, watchdog_interval_s

from agent.api import serve
from agent.config import AgentConfig, load_agent_config
from agent.coordination import Reporter
from agent.daemon import Agent
from agent.lbcheck import PATHS, lb_answer
from agent.metrics import render_metrics

log = logging.getLogger("jfs_milvus.agent")


M_ARENA_MAX = -8  # glibc mallopt parameter
STEPS_AT_ONCE = 6  # converging steps taken back to back before the loop waits its interval again


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own malloc arena (up to 8 per core); for a daemon with a
    dozen mostly idle threads that is resident memory for nothing. Two arenas are plenty."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, arenas)


def run_daemon(config: AgentConfig, docker_url: str | None = None) -> int:
    limit_malloc_arenas()
    context = LogContext(node=config.node_name)
    configure_logging(context, config.log_level)
    agent = Agent(config, context, docker_url=docker_url)
    stop, reload = _signals(agent)
    agent.start()
    reporter = Reporter(agent.report_request, agent.authority, config) if config.coordinators else None
    if reporter is not None:
        agent.report_soon = reporter.report_soon
        reporter.start()
    api = serve(agent, config)
    checks = {path: _lb_check(agent, path) for path in PATHS}
    metrics = MetricsServer(
        config.address, config.metrics_port, lambda: render_metrics(agent.status(), process=True), checks
    )
    metrics.start()
    log.info("agent %s started; metrics on http://%s:%d/metrics", config.node_name, config.address, metrics.port)
    notify("READY=1\nSTATUS=converging")
    try:
        _run_loop(agent, config.loop_interval_s, stop, reload)
    finally:
        notify("STOPPING=1")
        log.info("stopping on signal; the Milvus container is left running as it is")
        api.stop(grace=2).wait(3)
        metrics.stop()
        agent.stop()
        if reporter is not None:
            reporter.stop(last_report=True)
    return 0


def _signals(agent: Agent) -> tuple[threading.Event, threading.Event]:
    """SIGTERM and SIGINT stop the loop, SIGHUP reloads the config; each wakes the loop at once."""
    stop = threading.Event()
    reload = threading.Event()

    def on_term(signum: int, frame: Any) -> None:
        stop.set()
        agent.wake.set()

    def on_hup(signum: int, frame: Any) -> None:
        reload.set()
        agent.wake.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, on_hup)
    return stop, reload


def _run_loop(agent: Agent, interval_s: float, stop: threading.Event, reload: threading.Event) -> None:
    """The loop until `stop`: a cycle, the systemd watchdog, and the wait for the next cycle."""
    watchdog = watchdog_interval_s()
    last_ping = 0.0
    acted_in_a_row = 0
    while not stop.is_set():
        started = time.monotonic()
        agent.wake.clear()  # before the cycle: news that arrives during it wakes the next one
        if reload.is_set():
            reload.clear()
            _reload(agent)
        acted, wait_s = False, interval_s
        try:
            step = agent.loop_once()
            notify(f"STATUS={step.action.value}: {step.reason}"[:200])
            acted = step.acted
            if step.recheck_s is not None:
                wait_s = min(wait_s, step.recheck_s)
        except Exception:  # the loop must survive anything one cycle throws
            log.exception("loop cycle failed; continuing")
        if watchdog is not None and time.monotonic() - last_ping >= watchdog / 2:
            notify("WATCHDOG=1")
            last_ping = time.monotonic()
        # A step that changed something (stop, mount, write the config...) is followed by the next one at
        # once: a promotion is several steps, each would otherwise wait a whole interval. A table that kept
        # acting without converging would still wait its interval after a few.
        acted_in_a_row = acted_in_a_row + 1 if acted else 0
        if acted and acted_in_a_row < STEPS_AT_ONCE:
            continue
        acted_in_a_row = 0
        agent.wake.wait(max(0.0, wait_s - (time.monotonic() - started)))


def _lb_check(agent: Agent, path: str) -> Callable[[], tuple[int, bytes]]:
    """A load balancer's check: the last published observation and the lease, read once each (no Docker call)."""

    def answer() -> tuple[int, bytes]:
        seen = agent.snapshot
        return lb_answer(path, agent.config.node_name, seen, agent.authority.holds_writer_lease(seen.assignment))

    return answer


def _reload(agent: Agent) -> None:
    path = agent.config.path
    if path is None:
        log.warning("SIGHUP: running without a config file, nothing to reload")
        return
    try:
        new = load_agent_config(path)
    except ConfigError as exc:
        log.error("SIGHUP: new config refused, keeping the old one: %s", "; ".join(str(p) for p in exc.problems))
        return
    if (new.node_name, new.address, new.agent_port, new.metrics_port, new.tls, new.coordinators, new.coordination) != (
        agent.config.node_name,
        agent.config.address,
        agent.config.agent_port,
        agent.config.metrics_port,
        agent.config.tls,
        agent.config.coordinators,
        agent.config.coordination,
    ):
        log.error(
            "SIGHUP: node name, address, ports, TLS and coordination need a restart; new config refused, "
            "keeping the old one"
        )
        return
    agent.reload(new)
