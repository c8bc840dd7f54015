"""`jfs-milvus-coordinator make-certs`: a small CA and one certificate per coordinator, agent, operator and
viewer, for mutual TLS between them. Uses the openssl command; keys are written with mode 0600.

Each certificate says who holds it as a SAN URI, `jfs-milvus://KIND/NAME` (common.authz reads it): asked for as
`KIND:NAME[=ADDRESS,...]`, or as the older `NAME[=ADDRESS,...]`, whose kind follows from the name
(`infer_kind`). A certificate made before kinds existed is made again, with its kind, by the same command.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from jfsmilvus.common.authz import KINDS, identity_uri
from jfsmilvus.common.configschema import NAME_ALLOWED, NAME_PATTERN


class CertError(Exception):
    """Making a certificate failed; the message says which and why."""


def _openssl(directory: Path, *args: str) -> None:
    try:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, text=True, timeout=60)
    except FileNotFoundError as exc:
        raise CertError("the openssl command is not installed (apt install openssl)") from exc
    except subprocess.CalledProcessError as exc:
        raise CertError(f"openssl {args[0]} failed: {exc.stderr.strip()[-300:]}") from exc


@dataclass(frozen=True)
class CertSpec:
    kind: str
    name: str
    addresses: tuple[str, ...] = ()


def infer_kind(name: str) -> str:
    """The kind of a certificate asked for by name alone: operator*, viewer*, coord* say so; any other name
    is a node's agent."""
    for prefix, kind in (("operator", "operator"), ("viewer", "viewer"), ("coord", "coordinator")):
        if name.startswith(prefix):
            return kind
    return "agent"


def parse_spec(item: str) -> CertSpec:
    """`KIND:NAME[=ADDRESS,...]` or `NAME[=ADDRESS,...]`; CertError says what is wrong."""
    head, _, addresses = item.partition("=")
    kind, sep, name = head.partition(":")
    if not sep:
        kind, name = infer_kind(head), head
    if kind not in KINDS:
        raise CertError(f"{item!r}: the kind {kind!r} is not one of {', '.join(KINDS)}")
    if not re.fullmatch(NAME_PATTERN, name):
        raise CertError(f"{item!r}: the name {NAME_ALLOWED}")
    return CertSpec(kind, name, tuple(a for a in addresses.split(",") if a))


def _has_identity(cert: Path, spec: CertSpec) -> bool:
    try:
        text = subprocess.run(
            ["openssl", "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return f"URI:{identity_uri(spec.kind, spec.name)}" in text


def subject_alt_name(name: str, addresses: list[str] | tuple[str, ...], kind: str | None = None) -> str:
    entries = [f"DNS:{name}"]
    for address in addresses:
        try:
            ipaddress.ip_address(address)
            entries.append(f"IP:{address}")
        except ValueError:
            entries.append(f"DNS:{address}")
    if kind is not None:
        entries.append(f"URI:{identity_uri(kind, name)}")
    return ",".join(dict.fromkeys(entries))


def make_certs(directory: str, names: dict[str, list[str]], days: int = 825, force: bool = False) -> list[str]:
    """Create `ca.pem` (once) and `<name>.pem`/`<name>.key` for each `[KIND:]NAME` key (its addresses the
    value); returns what was made. A certificate there already is kept when it carries its identity."""
    specs = [parse_spec(key + ("=" + ",".join(addresses) if addresses else "")) for key, addresses in names.items()]
    return make_identity_certs(directory, specs, days=days, force=force)


def make_identity_certs(directory: str, specs: list[CertSpec], days: int = 825, force: bool = False) -> list[str]:
    """`ca.pem` (once) and each spec's certificate and key in `directory`; returns the files made."""
    by_file: dict[str, CertSpec] = {}
    for spec in specs:
        other = by_file.setdefault(spec.name, spec)
        if other.kind != spec.kind:
            raise CertError(f"{spec.name} is asked for as both {other.kind} and {spec.kind}: one file each name")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    made: list[str] = []
    old_umask = os.umask(0o077)
    try:
        if not (out / "ca.pem").exists() or not (out / "ca.key").exists():
            _make_ca(out, days)
            made.append(str(out / "ca.pem"))
        for spec in specs:
            cert, key = out / f"{spec.name}.pem", out / f"{spec.name}.key"
            if cert.exists() and key.exists() and not force and _has_identity(cert, spec):
                continue
            _make_identity(out, spec, days)
            made.append(str(cert))
        (out / "ca.key").chmod(0o600)
        (out / "ca.pem").chmod(0o644)
    finally:
        os.umask(old_umask)
    return made


def _make_ca(out: Path, days: int) -> None:
    """A new CA key and self-signed certificate: `ca.key`, `ca.pem`."""
    _openssl(
        out,
        "req",
        "-x509",
        "-newkey",
        "rsa:3072",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        str(days),
        "-subj",
        "/CN=jfs-milvus CA",
    )


def _make_identity(out: Path, spec: CertSpec, days: int) -> None:
    """`<name>.key` and `<name>.pem` signed by the CA, carrying the spec's identity (its names and addresses)."""
    name = spec.name
    cert, key = out / f"{name}.pem", out / f"{name}.key"
    ext = out / f"{name}.ext"
    ext.write_text(
        f"subjectAltName={subject_alt_name(name, spec.addresses, spec.kind)}\n"
        "extendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n"
    )
    _openssl(
        out, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key.name, "-out", f"{name}.csr", "-subj", f"/CN={name}"
    )
    _openssl(
        out,
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        cert.name,
        "-days",
        str(days),
        "-extfile",
        ext.name,
    )
    for leftover in (ext, out / f"{name}.csr"):
        leftover.unlink(missing_ok=True)
    key.chmod(0o600)
    cert.chmod(0o644)
