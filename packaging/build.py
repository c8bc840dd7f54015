"""Build jfs-milvus-agent and jfs-milvus-coordinator .deb packages and a local apt repository in dist/.

    python3 packaging/build.py                    # dist/jfs-milvus-{agent,coordinator}_<version>-1_amd64.deb
    python3 packaging/build.py --revision 2       # a newer build of the same version
    python3 packaging/build.py --only agent --out /tmp/repo
    python3 packaging/build.py --index-only --out /srv/jfs-milvus   # after copying .deb files there

Needs python3 with pip (3.11, as on Debian 12), dpkg-dev and network access to the Python package index.
Wheels are the hashed ones in packaging/requirements.lock. Progress goes to stderr; the paths of the built
packages to stdout.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from common import PACKAGING_DIR, REPO
from debian import add_debian_files, build_deb, write_apt_index
from pytree import build_wheel, install_tree
from specs import PACKAGES

# The one version (pyproject.toml's, or --version): the wheel's, so what the commands report, and the
# packages' upstream version. Release numbers only, which PEP 440 and Debian order alike.
UPSTREAM_VERSION = re.compile(r"[0-9]+(\.[0-9]+)*")
TOOLS = {"dpkg-deb": "dpkg", "dpkg-scanpackages": "dpkg-dev"}


def say(message: str) -> None:
    print(f"[build] {message}", file=sys.stderr, flush=True)


def upstream_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def host_arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()


def commit_time() -> str:
    result = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%ct"], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else str(int(time.time()))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="packaging/build.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--version",
        default=upstream_version(),
        help="upstream version, also the wheel's, which the commands report (default: pyproject.toml)",
    )
    parser.add_argument("--revision", default="1", help="Debian revision, raise it for a newer build (default: 1)")
    parser.add_argument("--out", default=str(REPO / "dist"), help="output directory and apt repository (dist/)")
    parser.add_argument("--only", choices=sorted(PACKAGES), action="append", help="build only this package")
    parser.add_argument("--index-only", action="store_true", help="only write the apt index of the .deb files in --out")
    parser.add_argument("--arch", default=None, help="Debian architecture (default: this machine's)")
    parser.add_argument(
        "--compression",
        choices=("xz", "zstd"),
        default="xz",
        help="xz (default: smallest, any dpkg) or zstd (10x faster to build, dpkg >= 1.21.18 as in Debian 12)",
    )
    parser.add_argument(
        "--conf-dir", default=str(PACKAGING_DIR / "conf"), help="where agent.yaml and coordinator.yaml come from"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"packaging/build.py needs: apt-get install {' '.join(sorted(set(missing)))}")
    os.environ.setdefault("SOURCE_DATE_EPOCH", commit_time())
    if args.index_only:
        write_apt_index(Path(args.out).resolve())
        return 0
    if not UPSTREAM_VERSION.fullmatch(args.version):
        raise SystemExit(
            f"--version {args.version!r}: digits and dots only (it is both the Python and the Debian version)"
        )
    arch = args.arch or host_arch()
    version = f"{args.version}-{args.revision}"
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    built = []
    with tempfile.TemporaryDirectory(prefix="jfs-milvus-build-") as tmp:
        work = Path(tmp)
        say(f"building the jfs-milvus wheel from {REPO}")
        wheel = build_wheel(work / "wheel", args.version)
        for role in args.only or sorted(PACKAGES):
            spec = PACKAGES[role]
            root = work / spec.name
            say(f"{spec.name} {version} {arch}: installing the locked wheels into {spec.libdir}")
            install_tree(spec, root, wheel, arch, work)
            add_debian_files(spec, root, Path(args.conf_dir), version)
            deb = build_deb(spec, root, version, arch, out, args.compression)
            say(f"{deb.name}: {deb.stat().st_size / 2**20:.1f} MiB")
            built.append(deb)
    write_apt_index(out)
    say(f"apt repository in {out} (Packages, Packages.gz, Release); {time.monotonic() - started:.0f} s")
    for deb in built:
        print(deb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
