"""Which binaries of the NVIDIA container toolkit this node has: what serves the GPU device request Milvus starts with.

The agent starts a GPU image with a Docker device request (`DeviceRequest(driver="nvidia", capabilities=[["gpu"]])`,
what `docker run --gpus` sends). dockerd serves it with its built-in `nvidia` device driver, which it registers only
when `nvidia-container-runtime-hook` is on its PATH as it starts (moby `daemon/nvidia_linux.go`, `init`); that hook
becomes the container's prestart hook and calls `nvidia-container-cli` (libnvidia-container-tools) to bring the GPUs
and the driver's libraries (libnvidia-ml.so.1 among them) into the container. A registered `nvidia` runtime is not
needed for device requests. Engines with moby#50228 also serve `--gpus` through CDI when `nvidia-cdi-hook` is present
and a CDI spec exists (`nvidia-ctk cdi generate`).

`find_nvidia_toolkit` looks; the doctor (coordinator/doctor.py) judges what it found.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping

from jfsmilvus.common.milvus1 import TOOLKIT_BINARIES

# dockerd under systemd has these on its PATH even when the agent's own PATH is shorter.
SYSTEM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

Which = Callable[..., str | None]  # shutil.which(name, path=...)


def toolkit_search_path(environ: Mapping[str, str]) -> str:
    """The agent's PATH, then the system directories it lacks."""
    dirs = [d for d in environ.get("PATH", "").split(os.pathsep) if d]
    dirs += [d for d in SYSTEM_DIRS if d not in dirs]
    return os.pathsep.join(dirs)


def find_nvidia_toolkit(search_path: str, which: Which = shutil.which) -> dict[str, str]:
    """Each toolkit binary found on `search_path` -> its path (only those found)."""
    found: dict[str, str] = {}
    for name in TOOLKIT_BINARIES:
        path = which(name, path=search_path)
        if path:
            found[name] = path
    return found


def probe_nvidia_toolkit() -> dict[str, str]:
    """The toolkit binaries on this node, searched as dockerd would."""
    return find_nvidia_toolkit(toolkit_search_path(os.environ))
