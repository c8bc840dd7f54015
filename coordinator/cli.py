"""jfs-milvus-coordinator: the daemon's command line (the daemon itself arrives with issue 4)."""

from __future__ import annotations

import argparse

from coordinator import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jfs-milvus-coordinator",
        description=(
            "Assigns the rw and ro roles to the Milvus nodes of a jfs-milvus cluster, fails over to a healthy "
            "reader when the writer fails, and writes the Mishards discovery config. Not yet runnable in this "
            "version: only --help and --version work."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0
