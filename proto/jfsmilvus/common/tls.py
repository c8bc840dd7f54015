"""Mutual TLS for both daemons: the `tls:` config section, channel and server credentials, and the rule that a
server without TLS listens on a loopback address only (unless `tls.allow_insecure_remote` says otherwise)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import grpc

from jfsmilvus.common.configschema import Section, check_tls_files
from jfsmilvus.common.secrets import secret_file_problem

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class TlsSettings:
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    allow_insecure_remote: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.ca and self.cert and self.key)


def read_tls(sec: Section, private_key: bool) -> TlsSettings:
    """The `tls:` section: all three of ca, cert and key or none, each a PEM file; with `private_key` the key
    file must not be readable by group or others (the agent's rule; the coordinator's key is left to its user)."""
    tls = TlsSettings(
        ca=sec.path_("ca", None),
        cert=sec.path_("cert", None),
        key=sec.path_("key", None),
        allow_insecure_remote=sec.boolean("allow_insecure_remote", False),
    )
    given = [k for k in ("ca", "cert", "key") if getattr(tls, k)]
    if given not in ([], ["ca", "cert", "key"]):
        sec.problem("", {k: getattr(tls, k) for k in given}, "set all three of ca, cert and key, or none")
    key_problem = secret_file_problem(tls.key) if private_key and tls.key else None
    if key_problem:
        sec.problem("key", tls.key, f"the private key file {key_problem}")
    check_tls_files(sec, {"ca": tls.ca, "cert": tls.cert, "key": None if key_problem else tls.key})
    sec.finish()
    return tls


def _read(path: str | None) -> bytes:
    assert path is not None
    with open(path, "rb") as f:
        return f.read()


def channel_credentials(tls: TlsSettings) -> grpc.ChannelCredentials | None:
    """Mutual TLS with our own certificate when TLS files are configured; None: plaintext. OSError when a file
    cannot be read."""
    if not tls.enabled:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca), private_key=_read(tls.key), certificate_chain=_read(tls.cert)
    )


def server_credentials(tls: TlsSettings) -> grpc.ServerCredentials:
    """A server that asks every client for a certificate from the configured CA."""
    return grpc.ssl_server_credentials(
        [(_read(tls.key), _read(tls.cert))], root_certificates=_read(tls.ca), require_client_auth=True
    )


def listen_host(host: str, tls: TlsSettings) -> str:
    """Without TLS, only a loopback address, unless the operator allows insecure remote access."""
    if tls.enabled or tls.allow_insecure_remote:
        return host
    try:
        if host not in ("0.0.0.0", "") and ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    return LOOPBACK
