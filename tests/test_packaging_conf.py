"""The config files the packages ship: commented out, they say what to fill in; uncommented, they are valid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from jfsmilvus.common.configschema import ConfigError

from agent.config import load_agent_config
from coordinator.config import load_coordinator_config

CONF = Path(__file__).resolve().parent.parent / "packaging" / "conf"
# A commented-out setting is '#' and then a key ("#node:", "#  name:") or a list item ("#    - name:").
SETTING = re.compile(r"^#(?=\s*[a-z_]+:|\s+- )")


def uncommented(text: str, etc: Path) -> str:
    lines = [SETTING.sub("", line) for line in text.splitlines()]
    return "\n".join(lines).replace("/etc/jfs-milvus/", f"{etc}/") + "\n"


def fake_etc(tmp_path: Path, text: str) -> Path:
    """Every file the config names under /etc/jfs-milvus, made under tmp_path with mode 0600."""
    names = set(re.findall(r"/etc/jfs-milvus/([\w./-]+)", text))
    for name in names:
        path = tmp_path / name
        if any(other.startswith(name + "/") for other in names):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        # A TLS file must look like PEM (jfsmilvus.common.configschema); any other file is a secret.
        pem = name.endswith((".pem", ".key"))
        path.write_text("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n" if pem else "secret\n")
        path.chmod(0o600)
    return tmp_path


@pytest.mark.parametrize(
    ("name", "load", "missing"),
    [
        (
            "agent.yaml",
            load_agent_config,
            [
                "node: missing",
                "node.name: missing",
                "node.address: missing",
                "milvus.meta_uri: missing",
                "milvus.meta_password_file: missing",
            ],
        ),
        ("coordinator.yaml", load_coordinator_config, ["cluster: missing", "mysql: missing"]),
    ],
)
def test_shipped_config(tmp_path: Path, name: str, load, missing: list[str]) -> None:  # type: ignore[no-untyped-def]
    text = (CONF / name).read_text()
    shipped = tmp_path / name
    shipped.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load(str(shipped))
    assert [str(p).split(": ", 1)[1].rsplit(": ", 1)[0] for p in raised.value.problems] == missing

    etc = fake_etc(tmp_path / "etc", text)
    full = tmp_path / f"full-{name}"
    full.write_text(uncommented(text, etc))
    load(str(full))  # every setting the file shows, uncommented, is accepted
