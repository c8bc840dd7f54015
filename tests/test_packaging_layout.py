"""Every Python package in the tree is listed in pyproject.toml, so an installed wheel is complete."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_every_package_directory_is_listed() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    roots = {name: REPO / path for name, path in config["package-dir"].items()}
    found = set()
    for name, root in roots.items():
        for init in root.rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            relative = init.parent.relative_to(root).parts
            found.add(".".join((name, *relative)))
    assert found == listed, f"missing: {sorted(found - listed)}; listed but absent: {sorted(listed - found)}"


def test_each_package_ships_only_its_own_code(tmp_path: Path) -> None:
    """The coordinator's package carries no agent code (and the agent's none of the coordinator's): the wheel
    holds all of ours, and the tree of each package keeps only what its spec names, RECORD included."""
    sys.path.insert(0, str(REPO / "packaging"))  # packaging/'s modules import one another by bare name
    try:
        import specs
        from pytree import drop_other_packages
    finally:
        sys.path.remove(str(REPO / "packaging"))

    assert specs.AGENT.python_packages == ("agent", "jfsmilvus")
    assert specs.COORDINATOR.python_packages == ("coordinator", "jfsmilvus")
    site = tmp_path / "site"
    for name in ("agent", "coordinator", "jfsmilvus", "grpc"):
        (site / name).mkdir(parents=True)
        (site / name / "__init__.py").write_text("")
    info = site / "jfs_milvus-0.1.0.dist-info"
    info.mkdir()
    rows = ["agent/__init__.py,sha256=x,0", "coordinator/__init__.py,sha256=x,0", "jfsmilvus/__init__.py,sha256=x,0"]
    (info / "RECORD").write_text("\n".join(rows) + "\n")
    drop_other_packages(site, specs.COORDINATOR.python_packages)
    assert sorted(p.name for p in site.iterdir()) == ["coordinator", "grpc", "jfs_milvus-0.1.0.dist-info", "jfsmilvus"]
    assert (info / "RECORD").read_text() == "coordinator/__init__.py,sha256=x,0\njfsmilvus/__init__.py,sha256=x,0\n"
