"""The Debian packages: built by packaging/build.py, checked by lintian and systemd-analyze, installed with apt
into a fresh Debian 12 root (a container from a debootstrap root), upgraded, removed and purged.

Builds are cached by the content of what goes into them (CACHE_DIR/packages/<hash>), so a second run only
installs. The container reaches deb.debian.org for python3 and the other dependencies, as a node would.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.debroot import ensure_debroot_image
from tests.standin.build import CACHE_DIR

pytestmark = [pytest.mark.slow, pytest.mark.root]

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "packaging" / "build.py"
PACKAGE_CACHE = CACHE_DIR / "packages"
INPUTS = ("agent", "coordinator", "proto", "packaging", "systemd", "monitoring", "pyproject.toml", "README.md")
PACKAGES = ("jfs-milvus-agent", "jfs-milvus-coordinator")
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
NEXT_VERSION = f"{VERSION}.1"  # an upgrade to another upstream version: the commands must report it
APT_LINE = "deb [trusted=yes] file:/srv/jfs-milvus ./"
AGENT_CONF = "/etc/jfs-milvus/agent.yaml"
# The operator's edit: a node without GPUs, one volume whose password is in the file the package made, and the
# agent's own secret files kept in a folder of the operator's choosing.
SECRETS_DIR = "/etc/jfs-milvus-site-secrets"
EDITED_AGENT_CONF = f"""\
# edited by the operator
node: {{name: gpu-node-1, address: 10.0.0.11}}
gpu: {{enabled: false}}
juicefs:
  secrets_dir: {SECRETS_DIR}
  volumes:
    - name: milvus
      meta_url: redis://10.0.0.5:6379/1
      mountpoint: /mnt/jfs
      password_file: /etc/jfs-milvus/secrets/meta-password
milvus:
  flavor: cpu
  meta_uri: mysql://milvus@10.0.0.5:3306/milvus
  meta_password_file: /etc/jfs-milvus/secrets/mysql-password
"""
COORDINATOR_CONF = """\
cluster: milvus-test
mysql: {host: 10.0.0.5, password_file: /etc/jfs-milvus/secrets/coordinator-mysql-password}
"""
# What the agent's first cycle does to the mount's files (the helper, the env file, fstab), run with the
# package's own code; prints what it changed.
CONFIGURE_MOUNTS = """\
PATH=$PATH:/usr/lib/jfs-milvus/agent/bin python3 -IS - <<'EOF'
import sys
sys.path[:0] = ["/usr/lib/jfs-milvus/agent/site"]
from agent.config import load_agent_config
from agent.mount import MountManager
c = load_agent_config("/etc/jfs-milvus/agent.yaml")
for v in c.juicefs.volumes:
    for action in MountManager(v, c.juicefs, c.node_name).configure():
        print(action)
EOF
"""
# Paths that change in any root whatever is installed: apt's and dpkg's own records, caches, logs.
# And the backups the shadow tools keep of the user databases when adduser and deluser edit them.
VOLATILE = re.compile(
    r"^/(proc|sys|dev|run|tmp|var/(lib/apt|lib/dpkg|cache|log|tmp|backups))(/|$)|^/etc/(passwd|group|shadow|gshadow)-$"
)


def _inputs_hash() -> str:
    digest = hashlib.sha256()
    for name in INPUTS:
        path = REPO / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            if "__pycache__" in f.parts or f.suffix == ".pyc":
                continue
            digest.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_packages(revision: str, *extra: str) -> Path:
    """Both packages of this tree at `revision`, built once per content of the tree."""
    key = hashlib.sha256(f"{_inputs_hash()} {revision} {' '.join(extra)}".encode()).hexdigest()[:16]
    out = PACKAGE_CACHE / f"{revision}-{key}"
    PACKAGE_CACHE.mkdir(parents=True, exist_ok=True)
    with open(PACKAGE_CACHE / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "Release").exists():
            partial = out.with_suffix(".partial")
            shutil.rmtree(partial, ignore_errors=True)
            subprocess.run(
                [sys.executable, str(BUILD), "--revision", revision, "--out", str(partial), *extra], check=True
            )
            partial.rename(out)
            for stale in PACKAGE_CACHE.glob(f"{revision}-*"):  # builds of this revision from an older tree
                if stale != out:
                    shutil.rmtree(stale, ignore_errors=True)
    return out


def publish(built: Path, repo: Path) -> None:
    """Put the .deb files of a build into the apt repository and index it again, as an operator would."""
    for deb in built.glob("*.deb"):
        shutil.copy(deb, repo / deb.name)
    subprocess.run([sys.executable, str(BUILD), "--index-only", "--out", str(repo)], check=True)


class Root:
    """A container of the fresh Debian 12 root with the apt repository at /srv/jfs-milvus."""

    def __init__(self, image: str, repo: Path):
        self.name = f"jfs-milvus-pkgtest-{uuid.uuid4().hex[:8]}"
        self.repo = repo
        mount = f"{repo}:/srv/jfs-milvus:ro"
        subprocess.run(
            ["docker", "run", "-d", "--name", self.name, "-v", mount, image, "sleep", "infinity"],
            check=True,
            capture_output=True,
        )

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["docker", "exec", "-e", "DEBIAN_FRONTEND=noninteractive", self.name, "bash", "-ec", script],
            capture_output=True,
            text=True,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"in the root: {script}\nexit {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def files(self) -> set[str]:
        listing = self.sh("find / -xdev -print").stdout.splitlines()
        return {path for path in listing if not VOLATILE.match(path)}

    def package_files(self) -> set[str]:
        """Every path that an installed package lists."""
        return set(self.sh("cat /var/lib/dpkg/info/*.list").stdout.splitlines())

    def version(self, package: str) -> str:
        return self.sh(f"dpkg-query -W -f '${{Status}} ${{Version}}' {package}", check=False).stdout.strip()

    def close(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True)


@pytest.fixture(scope="module")
def first_build() -> Path:
    return build_packages("1")


@pytest.fixture(scope="module")
def debroot_image() -> str:
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.skip("no Docker engine")
    return ensure_debroot_image()


@pytest.fixture
def root(debroot_image: str, tmp_path: Path) -> Iterator[Root]:
    repo = tmp_path / "repo"
    repo.mkdir()
    repo.chmod(0o755)
    container = Root(debroot_image, repo)
    try:
        yield container
    finally:
        container.close()


def test_build_names_and_repository(first_build: Path) -> None:
    names = sorted(p.name for p in first_build.glob("*.deb"))
    assert names == [f"{p}_{VERSION}-1_amd64.deb" for p in PACKAGES]
    packages = (first_build / "Packages").read_text()
    assert all(f"Package: {p}" in packages for p in PACKAGES)
    release = (first_build / "Release").read_text()
    assert "Packages.gz" in release and "SHA256:" in release
    # Each package ships only its own code: the coordinator's has no agent/ (and the agent's no coordinator/).
    for package, foreign in (("jfs-milvus-coordinator", "agent"), ("jfs-milvus-agent", "coordinator")):
        (deb,) = first_build.glob(f"{package}_*.deb")
        listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
        assert f"/site/{foreign}/" not in listing and "/site/jfsmilvus/common/" in listing, package


def test_lintian_finds_no_error_and_no_warning(first_build: Path) -> None:
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed (scripts/setup-test-env installs it)")
    result = subprocess.run(
        ["lintian", "--tag-display-limit", "0", *map(str, sorted(first_build.glob("*.deb")))],
        capture_output=True,
        text=True,
    )
    tags = [line for line in result.stdout.splitlines() if re.match(r"^[EW]: ", line)]
    assert not tags, "\n".join(tags)


def test_units_verify_clean_where_installed(root: Root, first_build: Path) -> None:
    publish(first_build, root.repo)
    root.sh(f"echo '{APT_LINE}' > /etc/apt/sources.list.d/jfs-milvus.list && apt-get update -qq")
    root.sh(f"apt-get install -y -qq --no-install-recommends systemd {' '.join(PACKAGES)}")
    result = root.sh(
        "systemd-analyze verify /lib/systemd/system/jfs-milvus-agent.service "
        "/lib/systemd/system/jfs-milvus-coordinator.service 2>&1",
        check=False,
    )
    ours = [line for line in result.stdout.splitlines() if "jfs-milvus" in line]
    assert result.returncode == 0 and not ours, result.stdout


def test_install_upgrade_remove_purge(root: Root, first_build: Path) -> None:
    repo = root.repo
    publish(first_build, repo)
    before = root.files()

    # Install: one line in sources.list, then apt.
    root.sh(f"echo '{APT_LINE}' > /etc/apt/sources.list.d/jfs-milvus.list && apt-get update -qq")
    install = root.sh(f"apt-get install -y --no-install-recommends {' '.join(PACKAGES)} 2>&1")
    for package in PACKAGES:
        assert root.version(package) == f"install ok installed {VERSION}-1"
    # Not started (there is no systemd here, and the shipped config is incomplete): it says what to fill in,
    # with runuser (Debian has no sudo unless one installs it).
    assert "jfs-milvus-agent.service is not started: /etc/jfs-milvus/agent.yaml is not complete yet" in install.stdout
    assert "node: missing" in install.stdout
    check_as_user = "  runuser -u jfs-milvus -- jfs-milvus-coordinator check-config /etc/jfs-milvus/coordinator.yaml"
    assert check_as_user in install.stdout
    # Every file the packages installed is as shipped: each package carries md5sums, and dpkg checks them.
    assert root.sh("dpkg --verify jfs-milvus-agent jfs-milvus-coordinator").stdout == ""
    assert "sbin/mount.juicefs-jfsmilvus" in root.sh("cat /var/lib/dpkg/info/jfs-milvus-agent.md5sums").stdout
    assert "usr/bin/coordinatorctl" in root.sh("cat /var/lib/dpkg/info/jfs-milvus-coordinator.md5sums").stdout

    assert root.sh("jfs-milvus-agent --version").stdout.strip() == f"jfs-milvus-agent {VERSION}"
    assert root.sh("jfs-milvus-coordinator --version").stdout.strip() == f"jfs-milvus-coordinator {VERSION}"
    assert "switchover" in root.sh("coordinatorctl --help").stdout
    shipped = root.sh(f"jfs-milvus-agent check-config {AGENT_CONF}", check=False)
    assert shipped.returncode == 2
    missing = shipped.stderr.splitlines()
    assert missing[:3] == [
        f"{AGENT_CONF}: {key}: missing: this key is required" for key in ("node", "node.name", "node.address")
    ]
    assert [line.split(": ")[1] for line in missing[3:]] == ["milvus.meta_uri", "milvus.meta_password_file"]

    modes = root.sh(
        "stat -c '%n %a %U:%G' /etc/jfs-milvus/secrets /etc/jfs-milvus/secrets/* /var/lib/jfs-milvus "
        f"{AGENT_CONF} /etc/jfs-milvus/coordinator.yaml"
    ).stdout.splitlines()
    assert sorted(modes) == [
        "/etc/jfs-milvus/agent.yaml 644 root:root",
        "/etc/jfs-milvus/coordinator.yaml 644 root:root",
        "/etc/jfs-milvus/secrets 711 root:root",
        "/etc/jfs-milvus/secrets/coordinator-mysql-password 600 jfs-milvus:jfs-milvus",
        "/etc/jfs-milvus/secrets/meta-password 600 root:root",
        "/etc/jfs-milvus/secrets/mysql-password 600 root:root",
        "/etc/jfs-milvus/secrets/reader-mysql-password 600 root:root",
        "/var/lib/jfs-milvus 755 root:root",
    ]

    # The operator fills in the config and a secret. The system's own Python packages are never used: a
    # broken `yaml` in dist-packages changes nothing.
    root.sh(f"cat > {AGENT_CONF} <<'EOF'\n{EDITED_AGENT_CONF}EOF\necho s3cret > /etc/jfs-milvus/secrets/meta-password")
    root.sh("echo 'Mv1!#@/%pw' > /etc/jfs-milvus/secrets/mysql-password")
    root.sh("mkdir -p /usr/lib/python3/dist-packages && echo 'raise SystemExit(\"system yaml\")' > /tmp/yaml.py")
    root.sh("cp /tmp/yaml.py /usr/lib/python3/dist-packages/yaml.py")
    checked = root.sh(f"jfs-milvus-agent check-config {AGENT_CONF}")
    assert "OK (node gpu-node-1 at 10.0.0.11, volumes: milvus)" in checked.stdout
    root.sh("rm /usr/lib/python3/dist-packages/yaml.py /tmp/yaml.py")
    root.sh(f"cat > /etc/jfs-milvus/coordinator.yaml <<'EOF'\n{COORDINATOR_CONF}EOF")
    root.sh("runuser -u jfs-milvus -- jfs-milvus-coordinator check-config /etc/jfs-milvus/coordinator.yaml")
    # juicefs comes with the agent, privately; the agent finds it.
    assert "juicefs version 1.4" in root.sh("/usr/lib/jfs-milvus/agent/bin/juicefs version").stdout
    assert root.sh("command -v juicefs", check=False).returncode != 0

    # Upgrade to a newer version: the edited conffile and the filled-in secret stay, with no prompt, and every
    # command reports the new version.
    publish(build_packages("2", "--version", NEXT_VERSION, "--compression", "zstd"), repo)
    root.sh(f"apt-get update -qq && apt-get install -y --no-install-recommends {' '.join(PACKAGES)}")
    for package in PACKAGES:
        assert root.version(package) == f"install ok installed {NEXT_VERSION}-2"
    for command in ("jfs-milvus-agent", "jfs-milvus-coordinator", "coordinatorctl"):
        assert root.sh(f"{command} --version").stdout.strip() == f"{command} {NEXT_VERSION}"
    assert root.sh(f"cat {AGENT_CONF}").stdout == EDITED_AGENT_CONF
    assert root.sh("cat /etc/jfs-milvus/secrets/meta-password").stdout == "s3cret\n"
    assert root.sh("ls /etc/jfs-milvus").stdout.split() == ["agent.yaml", "coordinator.yaml", "secrets"]

    # A newer build whose shipped agent.yaml changed: unattended, --force-confold keeps the operator's file
    # and puts the new default beside it.
    conf = PACKAGE_CACHE / "conf-3"  # one path, so that the build is cached
    shutil.rmtree(conf, ignore_errors=True)
    shutil.copytree(REPO / "packaging" / "conf", conf)
    with open(conf / "agent.yaml", "a") as f:
        f.write("# a new default in revision 3\n")
    publish(
        build_packages(
            "3", "--version", NEXT_VERSION, "--only", "agent", "--compression", "zstd", "--conf-dir", str(conf)
        ),
        repo,
    )
    root.sh(
        "apt-get update -qq && apt-get install -y --no-install-recommends "
        "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold jfs-milvus-agent"
    )
    assert root.version("jfs-milvus-agent") == f"install ok installed {NEXT_VERSION}-3"
    assert root.sh(f"cat {AGENT_CONF}").stdout == EDITED_AGENT_CONF
    assert root.sh(f"tail -1 {AGENT_CONF}.dpkg-dist").stdout == "# a new default in revision 3\n"
    root.sh(f"rm {AGENT_CONF}.dpkg-dist")

    # The agent's first cycle: its env file goes into the operator's secrets_dir, fstab names it for the
    # helper, and the helper the package shipped is already what the agent would write.
    root.sh("cp /etc/fstab /tmp/fstab.before")
    actions = root.sh(CONFIGURE_MOUNTS).stdout
    assert f"wrote {SECRETS_DIR}/juicefs-milvus.env (mode 0600)" in actions and "wrote mount helper" not in actions
    assert root.sh(f"stat -c '%a %U' {SECRETS_DIR}/juicefs-milvus.env").stdout == "600 root\n"
    fstab_line = root.sh("grep ' /mnt/jfs ' /etc/fstab").stdout
    assert " juicefs-jfsmilvus " in fstab_line and f"jfs-milvus.env-file={SECRETS_DIR}/juicefs-milvus.env" in fstab_line
    assert "s3cret" not in fstab_line
    # Only the conffile the operator edited differs from what the package shipped.
    assert root.sh("dpkg --verify jfs-milvus-agent").stdout == f"??5?????? c {AGENT_CONF}\n"

    # Remove keeps the config and the secrets; the commands are gone.
    root.sh(f"apt-get remove -y {' '.join(PACKAGES)}")
    for package in PACKAGES:
        assert root.version(package).startswith("deinstall ok config-files")
    assert root.sh(f"cat {AGENT_CONF}").stdout == EDITED_AGENT_CONF
    assert root.sh("cat /etc/jfs-milvus/secrets/meta-password").stdout == "s3cret\n"
    assert root.sh("command -v jfs-milvus-agent", check=False).returncode != 0

    # Purge leaves no file of ours behind, nor the user, the env file in the operator's secrets_dir included;
    # it leaves the fstab line, and says so. Then the dependencies apt pulled in go too.
    purge = root.sh(f"apt-get purge -y {' '.join(PACKAGES)} 2>&1").stdout
    assert "left the JuiceFS line in /etc/fstab" in purge
    assert root.sh(f"test -e {SECRETS_DIR}", check=False).returncode != 0
    assert root.sh("grep -c ' /mnt/jfs ' /etc/fstab").stdout == "1\n"
    root.sh("cp /tmp/fstab.before /etc/fstab")
    root.sh("apt-get autoremove --purge -y")
    assert root.sh("getent passwd jfs-milvus", check=False).returncode != 0
    assert root.sh("getent group jfs-milvus", check=False).returncode != 0
    root.sh("rm /etc/apt/sources.list.d/jfs-milvus.list")
    left = root.files() - before - root.package_files()
    assert not [p for p in left if "jfs-milvus" in p], sorted(left)
    assert not left, sorted(left)
