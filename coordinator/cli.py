"""jfs-milvus-coordinator: run the coordinator, check its config, make TLS certificates."""

from __future__ import annotations

import argparse
import sys

from jfsmilvus.common.configschema import ConfigError

from coordinator import __version__
from coordinator.config import DEFAULT_CONFIG_PATH, CoordinatorConfig, config_path, load_coordinator_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jfs-milvus-coordinator",
        description=(
            "Assigns the rw and ro roles to the Milvus nodes of a jfs-milvus cluster, fails over to a healthy "
            "reader when the writer fails, and keeps Mishards pointed at the writer and the healthy readers."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="run the coordinator daemon",
        epilog=f"example: jfs-milvus-coordinator run --config {DEFAULT_CONFIG_PATH}",
    )
    run.add_argument("--config", metavar="FILE", help=f"coordinator config (default: {DEFAULT_CONFIG_PATH})")
    check = sub.add_parser(
        "check-config",
        help="validate the config; exit 0, or 2 with one line per problem",
        epilog="example: jfs-milvus-coordinator check-config /etc/jfs-milvus/coordinator.yaml",
    )
    check.add_argument("file", nargs="?", metavar="FILE")
    certs = sub.add_parser(
        "make-certs",
        help="make a CA and certificates for mutual TLS",
        description=(
            "Make DIR/ca.pem (once) and DIR/NAME.pem + NAME.key for each [KIND:]NAME[=ADDRESS,...]; keys are 0600. "
            "KIND says what the holder may do: coordinator (assigns roles), agent (the agent of node NAME: reports "
            "as NAME only), operator (acts: switchover, failover, pause, resume, maintenance, priority), viewer "
            "(reads: status, history, events, why, doctor). It is written as the SAN URI jfs-milvus://KIND/NAME. "
            "Without KIND: operator* and viewer* names are those kinds, coord* a coordinator, any other an agent. "
            "A certificate made before kinds existed is made again with its kind."
        ),
        epilog="example: jfs-milvus-coordinator make-certs /etc/jfs-milvus/tls coordinator:coord-1=10.0.0.5 "
        "agent:gpu-node-1=10.0.0.11 operator:alice viewer:grafana",
    )
    certs.add_argument("directory")
    certs.add_argument("names", nargs="+", metavar="[KIND:]NAME[=ADDRESS,...]")
    certs.add_argument("--days", type=int, default=825)
    certs.add_argument("--force", action="store_true", help="make certificates again even if they exist")
    return parser


def listening(config: CoordinatorConfig) -> str:
    """Where the API really listens, how, and where the others are told to reach it."""
    if config.tls.enabled:
        how = "mutual TLS"
    elif config.tls.allow_insecure_remote:
        how = "plaintext, open to the network (tls.allow_insecure_remote)"
    else:
        how = "plaintext: without tls, loopback only"
    return f"listens on {config.listen_address} ({how}), advertised as {config.advertise}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("run", "check-config"):
        path = config_path(args.config if args.command == "run" else args.file)
        try:
            config = load_coordinator_config(path)
        except ConfigError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            return 2
        if args.command == "check-config":
            print(f"{path}: OK (cluster {config.cluster}, coordinator {config.coordinator_id}, {listening(config)})")
            return 0
        from coordinator.runner import run_coordinator

        return run_coordinator(config)
    if args.command == "make-certs":
        from coordinator.certs import CertError, make_identity_certs, parse_spec

        try:
            specs = [parse_spec(item) for item in args.names]
            made = make_identity_certs(args.directory, specs, days=args.days, force=args.force)
        except CertError as exc:
            print(f"jfs-milvus-coordinator make-certs: {exc}", file=sys.stderr)
            return 1
        kinds = {f"{s.name}.pem": f"{s.kind} {s.name}" for s in specs}
        for path in made:
            kind = kinds.get(path.rsplit("/", 1)[-1])
            print(f"made {path}" + (f" ({kind})" if kind else ""))
        if not made:
            print("nothing to make: every certificate exists (use --force to make them again)")
        return 0
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
