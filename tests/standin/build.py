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
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE_DIR = Path(os.environ.get("JFS_MILVUS_TEST_CACHE", "/var/cache/jfs-milvus-test"))
MIRROR = os.environ.get("JFS_MILVUS_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
PACKAGES = ("python3", "python3-yaml")
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
IMAGE_FILES = ("server.py", "writelog.py", "mishards.py")
DOCKERFILE = f"""\
FROM {{base}}
COPY {" ".join(IMAGE_FILES)} /opt/standin/
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
EXPOSE 19530 19121
STOPSIGNAL SIGTERM
LABEL org.jfs-milvus.standin=1
CMD ["python3", "/opt/standin/server.py"]
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


def image_hash() -> str:
    parts = [Path(__file__).read_bytes()] + [(HERE / name).read_bytes() for name in IMAGE_FILES]
    return _sha(b"\0".join(parts))


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


def _build_image(tag: str, base_tag: str, progress: Progress) -> None:
    with tempfile.TemporaryDirectory(prefix="standin-ctx-") as ctx:
        for name in IMAGE_FILES:
            shutil.copy(HERE / name, Path(ctx) / name)
        (Path(ctx) / "Dockerfile").write_text(DOCKERFILE.format(base=base_tag))
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


def ensure_standin(progress: Progress = _stderr) -> StandinBuild:
    """Build what is missing of the stand-in image and say what was built."""
    rhash = recipe_hash()
    tag = f"{IMAGE_REPO}:{image_hash()}"
    base_tag = f"{BASE_REPO}:{rhash}"
    tarball = CACHE_DIR / f"rootfs-{rhash}.tar"
    built_rootfs = built_base = built_image = False
    if image_exists(tag):
        return StandinBuild(tag, base_tag, tarball, False, False, False)
    with build_lock():
        if not image_exists(tag):
            if not image_exists(base_tag):
                if not tarball.exists():
                    progress(f"building root fs {tarball} (debootstrap {SUITE}, takes a few minutes)")
                    build_rootfs(tarball, progress)
                    built_rootfs = True
                progress(f"importing {tarball.name} as {base_tag}")
                _docker("import", "--message", "jfs-milvus stand-in base", str(tarball), base_tag)
                built_base = True
            progress(f"building {tag} FROM {base_tag}")
            _build_image(tag, base_tag, progress)
            built_image = True
            progress(f"built {tag}")
    return StandinBuild(tag, base_tag, tarball, built_rootfs, built_base, built_image)


def ensure_standin_image() -> str:
    """The tag of the stand-in image, building it first if needed (cached by content)."""
    return ensure_standin().tag


def main() -> int:
    print(ensure_standin_image())
    return 0


if __name__ == "__main__":
    sys.exit(main())
