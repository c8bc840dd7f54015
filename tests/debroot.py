"""A fresh Debian 12 root as a Docker image: `debootstrap --variant=minbase` bookworm with apt and nothing else.

Built once and cached like the stand-in's root (tests/standin/build.py): the tarball in CACHE_DIR, the image
tagged jfs-milvus-debroot:<recipe hash>. `python -m tests.debroot` prints the tag.
"""

from __future__ import annotations

import json
import sys

from tests.standin.build import (
    CACHE_DIR,
    MIRROR,
    SUITE,
    Progress,
    _docker,
    _sha,
    build_lock,
    build_rootfs,
    image_exists,
)

IMAGE_REPO = "jfs-milvus-debroot"
RECIPE_VERSION = 1
# apt's downloads and lists are fetched again by each test; the root keeps everything else minbase has.
TRIM = ("var/cache/apt/archives", "var/lib/apt/lists")


def _stderr(line: str) -> None:
    print(f"[debroot] {line}", file=sys.stderr, flush=True)


def recipe_hash() -> str:
    recipe = {"suite": SUITE, "variant": "minbase", "trim": TRIM, "v": RECIPE_VERSION, "mirror": MIRROR}
    return _sha(json.dumps(recipe, sort_keys=True).encode())


def ensure_debroot_image(progress: Progress = _stderr) -> str:
    """The tag of the fresh-root image, building what is missing (minutes the first time, then cached)."""
    rhash = recipe_hash()
    tag = f"{IMAGE_REPO}:{rhash}"
    if image_exists(tag):
        return tag
    with build_lock():
        if not image_exists(tag):
            tarball = CACHE_DIR / f"debroot-{rhash}.tar"
            if not tarball.exists():
                progress(f"building {tarball} (debootstrap {SUITE} minbase, takes a few minutes)")
                build_rootfs(tarball, progress, include=(), exclude=(), trim=TRIM)
            progress(f"importing {tarball.name} as {tag}")
            _docker("import", "--message", "jfs-milvus: fresh Debian 12 root", str(tarball), tag)
    return tag


if __name__ == "__main__":
    print(ensure_debroot_image())
    sys.exit(0)
