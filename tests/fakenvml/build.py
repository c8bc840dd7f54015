"""Build tests/fakenvml/fakenvml.c into build/libnvidia-ml.so.1, again only when the source changed."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FAKE_NVML_DIR = Path(__file__).resolve().parent
SOURCE = FAKE_NVML_DIR / "fakenvml.c"
BUILD_DIR = FAKE_NVML_DIR / "build"
LIBRARY_NAME = "libnvidia-ml.so.1"
CFLAGS = ("-O2", "-g", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC")


class FakeNvmlBuildError(RuntimeError):
    pass


def source_digest() -> str:
    """Hash of what decides the binary: the C source and the compiler flags."""
    digest = hashlib.sha256(SOURCE.read_bytes())
    digest.update(" ".join(CFLAGS).encode())
    return digest.hexdigest()


def build_fake_nvml(build_dir: Path = BUILD_DIR) -> Path:
    """The directory holding the built library (put it first on LD_LIBRARY_PATH)."""
    library = build_dir / LIBRARY_NAME
    stamp = build_dir / "source.sha256"
    digest = source_digest()
    if library.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return build_dir
    compiler = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not compiler:
        raise FakeNvmlBuildError("no C compiler found (install gcc) to build the fake libnvidia-ml.so.1")
    build_dir.mkdir(parents=True, exist_ok=True)
    # Compile to a temporary name and rename, so a concurrent reader never loads a half-written file.
    fd, tmp_name = tempfile.mkstemp(prefix=".libnvidia-ml.", suffix=".so", dir=build_dir)
    os.close(fd)
    try:
        result = subprocess.run(
            [compiler, *CFLAGS, "-o", tmp_name, str(SOURCE), "-lpthread"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise FakeNvmlBuildError(f"building {SOURCE.name} failed:\n{result.stderr}")
        os.chmod(tmp_name, 0o755)
        os.replace(tmp_name, library)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    stamp.write_text(digest + "\n")
    return build_dir


if __name__ == "__main__":
    print(build_fake_nvml() / LIBRARY_NAME)
    sys.exit(0)
