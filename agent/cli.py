"""jfs-milvus-agent: command line. `status` and `check-config` work without a daemon."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from jfsmilvus.common.configschema import ConfigError

from agent import __version__
from agent.config import (
    DEFAULT_CONFIG_PATH,
    AgentConfig,
    config_path_from_env,
    default_agent_config,
    load_agent_config,
)

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

    run = sub.add_parser(
        "run",
        help="run the agent daemon (what systemd starts)",
        description="Run the agent: observe the node, converge Milvus to its assignment, serve the API and /metrics.",
        epilog="example: jfs-milvus-agent run --config /etc/jfs-milvus/agent.yaml",
    )
    run.add_argument("--config", metavar="FILE", help=f"agent config (default: {DEFAULT_CONFIG_PATH})")

    assign = sub.add_parser(
        "assign",
        help="give this node a role by hand, for a node run without a coordinator",
        description=(
            "Write the local assignment file the daemon follows when no coordinator assigns roles. The operator "
            "then holds the one-writer rule, as in the manual procedure: assign rw to one node only."
        ),
        epilog="example: jfs-milvus-agent assign rw --epoch 2 --mishards-writer 10.0.0.11:19530 "
        "--mishards-hosts 10.0.0.12,10.0.0.13",
    )
    assign.add_argument("role", choices=("rw", "ro", "none"), help="rw: the writer; ro: a reader; none: run no Milvus")
    assign.add_argument("--epoch", type=int, required=True, help="must not be lower than the highest epoch seen")
    assign.add_argument("--reason", default="", help="why, for the log")
    assign.add_argument("--mishards-writer", metavar="HOST:PORT", help="WOSERVER for a node that hosts Mishards")
    assign.add_argument("--mishards-hosts", metavar="H1,H2", help="DISCOVERY_STATIC_HOSTS for Mishards")
    assign.add_argument("--config", metavar="FILE", help=f"agent config (default: {DEFAULT_CONFIG_PATH})")
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

    # What the probes would warn about is in the output itself; only errors go to stderr.
    logging.getLogger("jfs_milvus").setLevel(logging.ERROR)
    status = collect_status(config)
    print(json.dumps(status.to_dict(), indent=2, sort_keys=False) if args.json else render_status_table(status))
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    path = config_path_from_env(args.file)
    try:
        config = load_agent_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    errors, warnings = check_milvus_setup(config)
    errors += state_problems(config.state_dir)
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        return EXIT_USAGE
    for warning in warnings:
        print(f"warning: {warning}")
    volumes = ", ".join(v.name for v in config.juicefs.volumes) or "none"
    print(f"{path}: OK (node {config.node_name} at {config.address}, volumes: {volumes})")
    return EXIT_OK


def state_problems(state_dir: str) -> list[str]:
    """The agent's state file as `run` would find it (it refuses to start on one it cannot read); nothing when
    there is none, or when this user may not read it (the daemon's may)."""
    from agent.state import STATE_FILE, StateError, load_state

    if not os.access(os.path.join(state_dir, STATE_FILE), os.R_OK):
        return []
    try:
        load_state(state_dir)
    except StateError as exc:
        return [str(exc)]
    return []


def check_milvus_setup(config: AgentConfig) -> tuple[list[str], list[str]]:
    """What the daemon would find when it renders server_config.yaml: errors (Milvus would not start) and
    warnings (it would start, but not as the operator may think)."""
    from jfsmilvus.common.atomicfile import read_text

    from agent.milvus.server_config import BaseConfigError, base_config_warnings, parse_base_config

    milvus = config.milvus
    warnings: list[str] = []
    if milvus.flavor == "gpu" and milvus.gpus == "none":
        warnings.append(
            "milvus.flavor is gpu and milvus.gpus is none: the agent never starts a GPU image without GPUs "
            "(run a CPU image with milvus.flavor: cpu)"
        )
    elif milvus.flavor == "gpu" and not config.gpu.enabled:
        warnings.append(
            "milvus.flavor is gpu and gpu.enabled is false: without the GPU monitor the agent never starts a GPU "
            "image (it cannot tell which GPUs to give it)"
        )
    try:
        text = read_text(milvus.base_config)
    except OSError as exc:
        return [f"{milvus.base_config} (milvus.base_config): cannot be read: {exc.strerror}"], warnings
    if text is None:
        warnings.append(f"{milvus.base_config} (milvus.base_config) does not exist: Milvus runs on its defaults")
        return [], warnings
    try:
        base = parse_base_config(text, milvus.base_config)
    except BaseConfigError as exc:
        return [str(exc)], warnings
    return [], warnings + base_config_warnings(base, milvus.base_config)


def _load_or_report(explicit: str | None) -> AgentConfig | None:
    try:
        return load_agent_config(config_path_from_env(explicit))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def cmd_run(args: argparse.Namespace) -> int:
    config = _load_or_report(args.config)
    if config is None:
        return EXIT_USAGE
    from agent.state import StateError, load_state

    try:
        load_state(config.state_dir)
    except StateError as exc:
        # Exit 2, as for a config it refuses: systemd does not restart it (RestartPreventExitStatus=2).
        print(f"jfs-milvus-agent run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from agent.runner import run_daemon

    return run_daemon(config)


def cmd_assign(args: argparse.Namespace) -> int:
    from agent.assignment import Assignment, AssignmentError, LocalAssignmentFile, discovery_from_json, judge_assignment
    from agent.mishards.envfile import MishardsEnvError
    from agent.state import StateError, load_state

    config = _load_or_report(args.config)
    if config is None:
        return EXIT_USAGE
    if config.coordinators:
        print(
            "jfs-milvus-agent assign: refused: coordinators are configured, and their assignment outranks the "
            "local file (the daemon ignores it); use coordinatorctl",
            file=sys.stderr,
        )
        return EXIT_FAILED
    discovery = None
    if args.mishards_writer or args.mishards_hosts:
        hosts = [h.strip() for h in (args.mishards_hosts or "").split(",") if h.strip()]
        try:
            discovery = discovery_from_json({"writer": args.mishards_writer or "", "hosts": hosts})
        except MishardsEnvError as exc:
            print(f"jfs-milvus-agent assign: {exc}", file=sys.stderr)
            return EXIT_USAGE
    assignment = Assignment(
        role=args.role,
        epoch=args.epoch,
        source="jfs-milvus-agent assign",
        reason=args.reason or f"assigned {args.role} by hand",
        discovery=discovery,
    )
    try:
        highest = load_state(config.state_dir).highest_epoch
    except StateError as exc:
        print(f"jfs-milvus-agent assign: {exc}", file=sys.stderr)
        return EXIT_FAILED
    refusal = judge_assignment(assignment, highest)
    if refusal:
        print(f"jfs-milvus-agent assign: refused: {refusal}; use --epoch {highest} or higher", file=sys.stderr)
        return EXIT_FAILED
    try:
        changed = LocalAssignmentFile(config.state_dir).write(assignment)
    except (OSError, AssignmentError) as exc:
        print(f"jfs-milvus-agent assign: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{config.node_name}: assigned {args.role} at epoch {args.epoch}" + ("" if changed else " (unchanged)"))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "status":
        return cmd_status(args)
    if args.command == "check-config":
        return cmd_check_config(args)
    if args.command == "run":
        return cmd_run(args)
    if args.command == "assign":
        return cmd_assign(args)
    parser.print_help(sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
