"""What build.py, lock.py and their modules share: the target Python and pip's flags for it, paths, helpers.

The packages run on Debian 12's own python3 (3.11) and glibc (2.36). Wheels are chosen for that target,
whatever Python runs the build: CPython 3.11, manylinux up to glibc 2.36, the package's architecture.
"""

from __future__ import annotations

import datetime
import gzip
import os
import subprocess
import sys
from pathlib import Path

PYTHON_VERSION = "3.11"
GLIBC_MINOR = 36  # Debian 12
# Debian architecture -> the machine name in wheel platform tags. Milvus 1.x GPU images exist for amd64 only.
WHEEL_MACHINES = {"amd64": "x86_64"}

PACKAGING_DIR = Path(__file__).resolve().parent
REPO = PACKAGING_DIR.parent
LOCK_FILE = PACKAGING_DIR / "requirements.lock"


def wheel_platforms(arch: str) -> list[str]:
    machine = WHEEL_MACHINES.get(arch)
    if machine is None:
        raise SystemExit(f"no wheels for architecture {arch}: supported are {', '.join(WHEEL_MACHINES)}")
    return [f"manylinux_2_{minor}_{machine}" for minor in range(GLIBC_MINOR, 16, -1)] + [f"manylinux2014_{machine}"]


def target_flags(arch: str) -> list[str]:
    """pip flags that pick binary wheels for Debian 12's python3 on `arch`."""
    flags = ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp", "--abi", "cp311"]
    for platform in wheel_platforms(arch):
        flags += ["--platform", platform]
    return flags


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], check=True)


def source_date() -> datetime.datetime:
    return datetime.datetime.fromtimestamp(int(os.environ["SOURCE_DATE_EPOCH"]), datetime.UTC)


def gzip_n(data: bytes, dest: Path) -> None:
    """gzip -9n: no name or time stamp in the header, as Debian wants."""
    with open(dest, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
        gz.write(data)
