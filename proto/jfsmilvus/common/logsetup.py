"""Log lines of the form: time level node=NAME role=ROLE epoch=N component: what happened and why."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass


@dataclass
class LogContext:
    """The node's identity as it stands now; the agent loop updates role and epoch as they change."""

    node: str = "-"
    role: str = "-"
    epoch: int = 0


class _ContextFilter(logging.Filter):
    def __init__(self, context: LogContext):
        super().__init__()
        self.context = context

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = self.context.node
        record.role = self.context.role
        record.epoch = self.context.epoch
        record.component = record.name.removeprefix("jfs_milvus.")
        return True


class _UtcFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created)) + f".{int(record.msecs):03d}Z"


def configure_logging(context: LogContext, level: str = "info", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_ContextFilter(context))
    handler.setFormatter(
        _UtcFormatter(
            "%(asctime)s %(levelname)s node=%(node)s role=%(role)s epoch=%(epoch)s %(component)s: %(message)s"
        )
    )
    root = logging.getLogger("jfs_milvus")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
