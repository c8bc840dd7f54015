"""`jfs-milvus-coordinator make-certs`: a small CA and one certificate per coordinator, agent and operator,
for mutual TLS between them. Uses the openssl command; keys are written with mode 0600.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
from pathlib import Path


class CertError(Exception):
    """Making a certificate failed; the message says which and why."""


def _openssl(directory: Path, *args: str) -> None:
    try:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, text=True, timeout=60)
    except FileNotFoundError as exc:
        raise CertError("the openssl command is not installed (apt install openssl)") from exc
    except subprocess.CalledProcessError as exc:
        raise CertError(f"openssl {args[0]} failed: {exc.stderr.strip()[-300:]}") from exc


def subject_alt_name(name: str, addresses: list[str]) -> str:
    entries = [f"DNS:{name}"]
    for address in addresses:
        try:
            ipaddress.ip_address(address)
            entries.append(f"IP:{address}")
        except ValueError:
            entries.append(f"DNS:{address}")
    return ",".join(dict.fromkeys(entries))


def make_certs(directory: str, names: dict[str, list[str]], days: int = 825, force: bool = False) -> list[str]:
    """Create `ca.pem` (once) and `<name>.pem`/`<name>.key` for each name; returns what was made."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    made: list[str] = []
    old_umask = os.umask(0o077)
    try:
        if not (out / "ca.pem").exists() or not (out / "ca.key").exists():
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
            made.append(str(out / "ca.pem"))
        for name, addresses in names.items():
            cert, key = out / f"{name}.pem", out / f"{name}.key"
            if cert.exists() and key.exists() and not force:
                continue
            ext = out / f"{name}.ext"
            ext.write_text(
                f"subjectAltName={subject_alt_name(name, addresses)}\n"
                "extendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n"
            )
            _openssl(
                out,
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                key.name,
                "-out",
                f"{name}.csr",
                "-subj",
                f"/CN={name}",
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
            made.append(str(cert))
        (out / "ca.key").chmod(0o600)
        (out / "ca.pem").chmod(0o644)
    finally:
        os.umask(old_umask)
    return made
