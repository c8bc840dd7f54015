"""jfs-milvus-agent: command line. `status` and `check-config` work without a daemon."""

from __future__ import annotations

import argparse
import json
import os
import sys

from agent import __version__
from agent.config import (
    DEFAULT_CONFIG_PATH,
    AgentConfig,
    config_path_from_env,
    default_agent_config,
    load_agent_config,
)
from agent.configschema import ConfigError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jfs-milvus-agent",
        description="The jfs-milvus node agent: sees the node's GPUs and JuiceFS mount, runs Milvus in its role.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    status = sub.add_parser(
        "status",
        help="print what this node looks like now (GPUs, mounts); needs no daemon",
        description="Print the GPUs and JuiceFS mounts as the agent sees them now. Changes nothing.",
        epilog="example: jfs-milvus-agent status --json | jq .gpu.available",
    )
    status.add_argument(
        "--config", metavar="FILE", help=f"agent config (default: $JFS_MILVUS_AGENT_CONFIG or {DEFAULT_CONFIG_PATH})"
    )
    status.add_argument("--json", action="store_true", help="print JSON for programs instead of a table")

    check = sub.add_parser(
        "check-config",
        help="validate the agent config; exit 0 when valid, 2 with one line per problem",
        description="Validate an agent config file. Exits 0 when valid, or 2 and prints one line per problem.",
        epilog="example: jfs-milvus-agent check-config /etc/jfs-milvus/agent.yaml",
    )
    check.add_argument("file", nargs="?", metavar="FILE", help=f"config to check (default: {DEFAULT_CONFIG_PATH})")
    return parser


def _load_for_status(explicit: str | None) -> AgentConfig:
    path = config_path_from_env(explicit)
    if explicit is None and "JFS_MILVUS_AGENT_CONFIG" not in os.environ and not os.path.exists(path):
        return default_agent_config()
    return load_agent_config(path)


def cmd_status(args: argparse.Namespace) -> int:
    try:
        config = _load_for_status(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    from agent.status import collect_status, render_status_table

    status = collect_status(config)
    print(json.dumps(status, indent=2, sort_keys=False) if args.json else render_status_table(status))
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    path = config_path_from_env(args.file)
    try:
        config = load_agent_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    volumes = ", ".join(v.name for v in config.juicefs.volumes) or "none"
    print(f"{path}: OK (node {config.node_name} at {config.address}, volumes: {volumes})")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "status":
        return cmd_status(args)
    if args.command == "check-config":
        return cmd_check_config(args)
    parser.print_help(sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
