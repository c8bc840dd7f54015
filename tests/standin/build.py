"""Build the stand-in image from Debian packages, with no registry, and cache every stage.

Stages, each reused when present:
1. root fs: `debootstrap --variant=minbase` bookworm with python3 + python3-yaml, trimmed, tarred into
   CACHE_DIR/rootfs-<recipe hash>.tar (the slow step, minutes; kept across runs and image removals);
2. base image: `docker import` of that tarball, tagged jfs-milvus-standin-base:<recipe hash>;
3. image: a classic `docker build` FROM the base adding server.py and writelog.py, tagged
   jfs-milvus-standin:<hash of build.py + server.py + writelog.py> (seconds).

`python -m tests.standin.build` prints the image tag on stdout and progress on stderr.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE_DIR = Path(os.environ.get("JFS_MILVUS_TEST_CACHE", "/var/cache/jfs-milvus-test"))
MIRROR = os.environ.get("JFS_MILVUS_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
PACKAGES = ("python3", "python3-yaml", "python3-pymysql", "libstdc++6")  # libstdc++: grpcio's wheel
EXCLUDE = ("apt",)  # minbase brings apt; nothing here needs it, and leaving it out drops ~10 MB of libraries
# Removed from the root fs: nothing the server needs at run time.
TRIM_PATHS = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "usr/share/common-licenses",
    "usr/share/zoneinfo/right",
    "usr/lib/x86_64-linux-gnu/gconv",  # glibc iconv modules; Python has its own codecs
    "usr/lib/python3.11/test",
    "var/cache/apt",
    "var/cache/debconf",
    "var/lib/apt/lists",
    "var/log",
)
RECIPE_VERSION = 1  # bump to force a new root fs
IMAGE_REPO = "jfs-milvus-standin"
BASE_REPO = "jfs-milvus-standin-base"
PACKAGE_FILES = (
    "__init__.py",
    "server.py",
    "engine.py",
    "meta.py",
    "segments.py",
    "wal.py",
    "milvusconf.py",
    "writelog.py",
)  # the package `standin` in the image
IMAGE_FILES: tuple[str, ...] = ()  # beside it, run as scripts
# The Mishards stand-in (mishards/): its own image from the same base and site, laid out as Mishards's image is
# (/source/mishards, WORKDIR /source, `python3 mishards/main.py` as PID 1).
MISHARDS_REPO = "jfs-milvus-mishards-standin"
MISHARDS_FILES = ("__init__.py", "settings.py", "routing.py", "metadb.py", "proxy.py", "main.py", ".env.example")
FLAVORS = ("cpu", "gpu")
# Python packages the server needs beyond Debian's python3-yaml and python3-pymysql, as wheels for the image's
# CPython 3.11: grpcio, protobuf 3.20.x (the last runtime that loads pymilvus 1.0.1's generated modules), and
# milvus.proto's generated modules, taken from pymilvus 1.0.1's wheel (milvus/grpc_gen) as the package milvus_grpc.
SITE_REQUIREMENTS = ("grpcio==1.85.3", "protobuf==3.20.3")
PYMILVUS = "pymilvus==1.0.1"
DOCKERFILE = """\
FROM {base}
COPY site /opt/standin/site
COPY standin /opt/standin/standin
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/opt/standin:/opt/standin/site \\
    JFS_MILVUS_STANDIN_FLAVOR={flavor}
EXPOSE 19530 19121
LABEL org.jfs-milvus.standin=1 org.jfs-milvus.standin.flavor={flavor}
CMD ["python3", "-m", "standin.server"]
"""

MISHARDS_DOCKERFILE = """\
FROM {base}
COPY site /opt/standin/site
COPY mishards /source/mishards
WORKDIR /source
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/opt/standin/site
EXPOSE 19530
LABEL org.jfs-milvus.standin=mishards
CMD ["python3", "mishards/main.py"]
"""

Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(f"[standin] {line}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class StandinBuild:
    tag: str
    base_tag: str
    rootfs: Path
    built_rootfs: bool
    built_base: bool
    built_image: bool

    @property
    def built_anything(self) -> bool:
        return self.built_rootfs or self.built_base or self.built_image


def _sha(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()[:16]


def recipe_hash() -> str:
    recipe = {
        "suite": SUITE,
        "packages": PACKAGES,
        "exclude": EXCLUDE,
        "trim": TRIM_PATHS,
        "v": RECIPE_VERSION,
        "mirror": MIRROR,
    }
    return _sha(json.dumps(recipe, sort_keys=True).encode())


def image_hash(flavor: str = "cpu") -> str:
    names = [*PACKAGE_FILES, *IMAGE_FILES]
    parts = [Path(__file__).read_bytes(), flavor.encode()] + [(HERE / name).read_bytes() for name in names]
    return _sha(b"\0".join(parts))


def mishards_image_hash() -> str:
    parts = [Path(__file__).read_bytes()] + [(HERE / "mishards" / name).read_bytes() for name in MISHARDS_FILES]
    return _sha(b"\0".join(parts))


def site_hash() -> str:
    return _sha(json.dumps([SITE_REQUIREMENTS, PYMILVUS, platform.machine()]).encode())


def build_site(target: Path, progress: Progress) -> None:
    """pip-install the server's wheels for the image's CPython 3.11 into `target`, and milvus_grpc beside them."""
    machine = platform.machine()
    with tempfile.TemporaryDirectory(prefix="standin-site-", dir=CACHE_DIR) as tmp:
        site = Path(tmp) / "site"
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
        _run_streamed(
            [
                *pip,
                "install",
                "--target",
                str(site),
                "--only-binary=:all:",
                "--platform",
                f"manylinux2014_{machine}",
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
                "--abi",
                "cp311",
                *SITE_REQUIREMENTS,
            ],
            progress,
        )
        wheels = Path(tmp) / "wheels"
        _run_streamed([*pip, "download", "--no-deps", "--only-binary=:all:", "-d", str(wheels), PYMILVUS], progress)
        (wheel,) = wheels.glob("pymilvus-*.whl")
        package = site / "milvus_grpc"
        package.mkdir()
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if member.startswith("milvus/grpc_gen/") and member.endswith(".py"):
                    (package / Path(member).name).write_bytes(archive.read(member))
        if not (package / "milvus_pb2_grpc.py").is_file():
            raise RuntimeError(f"{wheel.name} holds no milvus/grpc_gen/milvus_pb2_grpc.py")
        shutil.rmtree(site / "bin", ignore_errors=True)
        os.replace(site, target)


def _docker(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, env=env)


def image_exists(tag: str) -> bool:
    return _docker("image", "inspect", tag, check=False).returncode == 0


def _run_streamed(cmd: list[str], progress: Progress) -> None:
    progress("$ " + " ".join(cmd))
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            progress("  " + line.rstrip())
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed with exit status {proc.returncode}")


def build_rootfs(
    tarball: Path,
    progress: Progress,
    include: tuple[str, ...] = PACKAGES,
    exclude: tuple[str, ...] = EXCLUDE,
    trim: tuple[str, ...] = TRIM_PATHS,
) -> None:
    """debootstrap a minbase SUITE root with `include` and without `exclude`, empty the `trim` folders, tar it."""
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed: apt-get install -y debootstrap")
    with tempfile.TemporaryDirectory(prefix="debroot-", dir=CACHE_DIR) as tmp:
        root = Path(tmp) / "root"
        started = time.monotonic()
        cmd = ["debootstrap", "--variant=minbase"]
        cmd += [f"--include={','.join(include)}"] if include else []
        cmd += [f"--exclude={','.join(exclude)}"] if exclude else []
        _run_streamed([*cmd, SUITE, str(root), MIRROR], progress)
        for rel in trim:
            target = root / rel
            if target.is_dir():
                shutil.rmtree(target)
                target.mkdir(parents=True)
        progress(f"debootstrap done in {time.monotonic() - started:.0f}s; writing {tarball.name}")
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], check=True)
        partial.rename(tarball)


def _build_image(tag: str, base_tag: str, site: Path, flavor: str, progress: Progress) -> None:
    files = {f"standin/{name}": HERE / name for name in PACKAGE_FILES}
    files.update({name: HERE / name for name in IMAGE_FILES})
    _docker_build(tag, DOCKERFILE.format(base=base_tag, flavor=flavor), files, site)


def _docker_build(tag: str, dockerfile: str, files: dict[str, Path], site: Path | None) -> None:
    """A classic `docker build` of `dockerfile` with `files` (context path -> source) and the site folder."""
    with tempfile.TemporaryDirectory(prefix="standin-ctx-") as ctx:
        for rel, source in files.items():
            (Path(ctx) / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, Path(ctx) / rel)
        if site is not None:
            shutil.copytree(site, Path(ctx) / "site")
        (Path(ctx) / "Dockerfile").write_text(dockerfile)
        # The classic builder uses the local base image and never asks a registry.
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        result = _docker("build", "--pull=false", "-q", "-t", tag, ctx, check=False, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"docker build failed:\n{result.stdout}{result.stderr}")


@contextmanager
def build_lock() -> Iterator[None]:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_standin(progress: Progress = _stderr, flavor: str = "cpu") -> StandinBuild:
    """Build what is missing of the stand-in image of `flavor` (cpu | gpu) and say what was built."""
    if flavor not in FLAVORS:
        raise ValueError(f"flavor must be one of {FLAVORS}, not {flavor!r}")
    rhash = recipe_hash()
    tag = f"{IMAGE_REPO}:{flavor}-{image_hash(flavor)}"
    base_tag = f"{BASE_REPO}:{rhash}"
    tarball = CACHE_DIR / f"rootfs-{rhash}.tar"
    site = CACHE_DIR / f"site-{site_hash()}"
    built_rootfs = built_base = built_image = False
    if image_exists(tag):
        return StandinBuild(tag, base_tag, tarball, False, False, False)
    with build_lock():
        if not image_exists(tag):
            built_rootfs, built_base = _ensure_base_and_site(base_tag, tarball, site, progress)
            progress(f"building {tag} FROM {base_tag}")
            _build_image(tag, base_tag, site, flavor, progress)
            built_image = True
            progress(f"built {tag}")
    return StandinBuild(tag, base_tag, tarball, built_rootfs, built_base, built_image)


def _ensure_base_and_site(base_tag: str, tarball: Path, site: Path, progress: Progress) -> tuple[bool, bool]:
    """The base image (from the cached root fs) and the site folder; (built the root fs, built the base)."""
    built_rootfs = built_base = False
    if not image_exists(base_tag):
        if not tarball.exists():
            progress(f"building root fs {tarball} (debootstrap {SUITE}, takes a few minutes)")
            build_rootfs(tarball, progress)
            built_rootfs = True
        progress(f"importing {tarball.name} as {base_tag}")
        _docker("import", "--message", "jfs-milvus stand-in base", str(tarball), base_tag)
        built_base = True
    if not site.is_dir():
        progress(f"installing the server's wheels into {site}")
        build_site(site, progress)
    return built_rootfs, built_base


def ensure_mishards_image(progress: Progress = _stderr) -> str:
    """The tag of the Mishards stand-in image (mishards/), built first if needed, from the same base and site."""
    rhash = recipe_hash()
    tag = f"{MISHARDS_REPO}:{mishards_image_hash()}"
    if image_exists(tag):
        return tag
    base_tag = f"{BASE_REPO}:{rhash}"
    site = CACHE_DIR / f"site-{site_hash()}"
    with build_lock():
        if not image_exists(tag):
            _ensure_base_and_site(base_tag, CACHE_DIR / f"rootfs-{rhash}.tar", site, progress)
            progress(f"building {tag} FROM {base_tag}")
            files = {f"mishards/{name}": HERE / "mishards" / name for name in MISHARDS_FILES}
            _docker_build(tag, MISHARDS_DOCKERFILE.format(base=base_tag), files, site)
            progress(f"built {tag}")
    return tag


# -- version images, for the rolling upgrade's tests ------------------------------------------------------------
# The stand-in tagged as Milvus versions: 1.0.0, a rebuild of 1.0.0 (another image of the same version, as a
# patched build is: `Cmd version` still answers 1.0.0), 1.1.1 (../shared/MILVUS1.md: the same config layout 0.5,
# ports and roles; `Cmd version` answers 1.1.1, which pymilvus 1.0.1 refuses at connect: its
# `_is_version_match` accepts 1.0.x only), and one that fails at start as a broken image would: it exits 1
# before it serves, every time it is started.
VERSION_REPO = "jfs-milvus-standin-version"
OLD_VERSION, NEW_VERSION = "1.0.0", "1.1.1"
VERSION_DOCKERFILE = """\
FROM {base}
ENV JFS_MILVUS_STANDIN_VERSION={version}
LABEL org.jfs-milvus.standin.version={version} org.jfs-milvus.standin.build={build}
"""
# Milvus's own words for a start that ends before it serves (server/Server.cpp: "Milvus server exit...").
BROKEN_DOCKERFILE = """\
FROM {base}
LABEL org.jfs-milvus.standin.version=broken
CMD ["python3", "-c", "print('Config check fail: broken image (stand-in)'); raise SystemExit(1)"]
"""


@dataclass(frozen=True)
class VersionImages:
    old: str  # answers version 1.0.0
    rebuilt: str  # another image of 1.0.0 (answers 1.0.0): an upgrade a pymilvus 1.0.1 client keeps writing through
    new: str  # answers version 1.1.1
    broken: str  # exits 1 at every start


def ensure_version_images(flavor: str = "cpu") -> VersionImages:
    """The tags, each built FROM the stand-in image of `flavor` when missing (seconds; cached by content: a tag
    names its version and the hash of its Dockerfile, which names the stand-in image)."""
    base = ensure_standin_image(flavor)
    recipes = {
        "old": (OLD_VERSION, VERSION_DOCKERFILE.format(base=base, version=OLD_VERSION, build=1)),
        "rebuilt": (f"{OLD_VERSION}-build2", VERSION_DOCKERFILE.format(base=base, version=OLD_VERSION, build=2)),
        "new": (NEW_VERSION, VERSION_DOCKERFILE.format(base=base, version=NEW_VERSION, build=1)),
        "broken": ("broken", BROKEN_DOCKERFILE.format(base=base)),
    }
    tags = {name: f"{VERSION_REPO}:{label}-{flavor}-{_sha(df.encode())}" for name, (label, df) in recipes.items()}
    with build_lock():
        for name, (_, dockerfile) in recipes.items():
            if not image_exists(tags[name]):
                _stderr(f"building {tags[name]} FROM {base}")
                _docker_build(tags[name], dockerfile, {}, None)
    return VersionImages(**tags)


def ensure_standin_image(flavor: str = "cpu") -> str:
    """The tag of the stand-in image of `flavor`, building it first if needed (cached by content)."""
    return ensure_standin(flavor=flavor).tag


def main() -> int:
    flavor = sys.argv[1] if len(sys.argv) > 1 else "cpu"
    if flavor == "versions":
        print("\n".join(vars(ensure_version_images()).values()))
        return 0
    print(ensure_mishards_image() if flavor == "mishards" else ensure_standin_image(flavor))
    return 0


if __name__ == "__main__":
    sys.exit(main())
