"""The one version number of jfs-milvus: `project.version` in pyproject.toml.

From a source tree (a pyproject.toml of jfs-milvus at the top, above proto/jfsmilvus/common/) it is read from
that file, so a checkout reports its own version even where an installed copy of another checkout is on the path (an
editable install's metadata says what was installed, not what runs). Installed (a wheel, the Debian package,
which packaging/build.py stamps with its --version), it is the distribution's metadata. Neither: "0+unknown".
"""

from __future__ import annotations

import functools
import os
import tomllib
from importlib import metadata

DISTRIBUTION = "jfs-milvus"
UNKNOWN = "0+unknown"
# proto/jfsmilvus/common/version.py -> the checkout's top (installed: a folder with no pyproject.toml of ours)
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def source_tree_version(root: str = SOURCE_ROOT) -> str | None:
    """`project.version` of `root`/pyproject.toml when it is jfs-milvus's; None when there is none."""
    try:
        with open(os.path.join(root, "pyproject.toml"), "rb") as f:
            project = tomllib.load(f).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    version = project.get("version") if project.get("name") == DISTRIBUTION else None
    return version if isinstance(version, str) and version else None


@functools.cache
def version() -> str:
    found = source_tree_version()
    if found is not None:
        return found
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN
