"""coordinatorctl: the operator's command line (its commands arrive with issue 5)."""

from __future__ import annotations

import argparse

from coordinator import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coordinatorctl",
        description=(
            "Operate a jfs-milvus cluster: status, switchover, failover, pause, maintenance, history. "
            "Not yet runnable in this version: only --help and --version work."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0
