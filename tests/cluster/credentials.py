"""Credentials for the cluster tests, made here: nkeys, ``.creds`` files under an
operator and account (signed with nkeys, as ``nsc`` would), and a small PKI made with
/usr/bin/openssl. Server config snippets are the ones docs/security.md shows."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import nkeys

OPENSSL = "/usr/bin/openssl"


def keypair(prefix: int) -> tuple[bytes, nkeys.KeyPair]:
    """A fresh nkey of the role ``prefix`` (``nkeys.PREFIX_BYTE_USER``, ...): its seed and key pair."""
    seed = nkeys.encode_seed(os.urandom(32), prefix)
    return seed, nkeys.from_seed(bytearray(seed))


def new_user_nkey(path: Path) -> str:
    """A fresh user nkey: its seed written to ``path`` (mode 0600), its public key (``U...``) returned."""
    seed, user = keypair(nkeys.PREFIX_BYTE_USER)
    path.write_bytes(seed + b"\n")
    path.chmod(0o600)
    return user.public_key.decode()


def nkey_server_config(public_key: str) -> str:
    return f'authorization {{\n  users = [\n    {{nkey: "{public_key}"}}\n  ]\n}}\n'


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_jwt(issuer: nkeys.KeyPair, subject: str, name: str, nats: dict, **claims) -> str:
    """A NATS JWT (header ``ed25519-nkey``) for ``subject``, signed by ``issuer``: what
    ``nsc`` writes. ``jti`` only has to be unique; the server does not recompute it."""
    body = {"iat": int(time.time()), "iss": issuer.public_key.decode(), "name": name, "sub": subject,
            "nats": {**nats, "version": 2}, **claims}
    body["jti"] = base64.b32encode(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()).decode().rstrip("=")
    signing_input = f"{_b64url(json.dumps({'typ': 'JWT', 'alg': 'ed25519-nkey'}).encode())}.{_b64url(json.dumps(body).encode())}"
    return f"{signing_input}.{_b64url(issuer.sign(signing_input.encode()))}"


#: The account's limits: -1 is unlimited; JetStream (the registry and node leases) needs
#: the four storage limits set.
ACCOUNT_LIMITS = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": True,
                  "conn": -1, "leaf": -1, "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}


def write_creds(path: Path, account: nkeys.KeyPair, **claims) -> None:
    """A ``.creds`` file for a fresh user of ``account`` (extra JWT ``claims``, e.g. ``exp``)."""
    seed, user = keypair(nkeys.PREFIX_BYTE_USER)
    jwt = signed_jwt(account, user.public_key.decode(), "node",
                     {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user"}, **claims)
    path.write_text(f"-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n"
                    f"-----BEGIN USER NKEY SEED-----\n{seed.decode()}\n------END USER NKEY SEED------\n")
    path.chmod(0o600)


def operator_server_config() -> tuple[str, nkeys.KeyPair]:
    """An operator-mode server config trusting one account (returned, to sign users) and
    a system account, both preloaded into the memory resolver."""
    _, operator = keypair(nkeys.PREFIX_BYTE_OPERATOR)
    _, account = keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    _, system = keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    operator_pub, account_pub, system_pub = (k.public_key.decode() for k in (operator, account, system))
    operator_jwt = signed_jwt(operator, operator_pub, "airssys", {"type": "operator"})
    account_jwt = signed_jwt(operator, account_pub, "cluster", {"limits": ACCOUNT_LIMITS, "type": "account"})
    system_jwt = signed_jwt(operator, system_pub, "SYS", {"type": "account"})
    conf = (f"operator: {operator_jwt}\nsystem_account: {system_pub}\nresolver: MEMORY\n"
            f"resolver_preload: {{\n  {account_pub}: {account_jwt}\n  {system_pub}: {system_jwt}\n}}\n")
    return conf, account


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(directory: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=directory)


def make_cert(directory: Path, name: str, ca: str, extensions: str) -> None:
    """``name.pem``/``name.key`` signed by ``ca`` with the x509v3 ``extensions``."""
    (directory / f"{name}.ext").write_text(extensions + "\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", cwd=directory)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=directory)


def tls_server_config(pki: Path) -> str:
    return (f'tls {{\n  cert_file: "{pki / "server.pem"}"\n  key_file: "{pki / "server.key"}"\n'
            f'  ca_file: "{pki / "ca.pem"}"\n  verify: true\n}}\n')


def make_pki(directory: Path) -> Path:
    """A CA (``ca``), a server certificate for 127.0.0.1 and a client certificate it
    signed, and a second CA (``other``) with a client certificate of its own (``stranger``)."""
    make_ca(directory, "ca")
    make_ca(directory, "other")
    make_cert(directory, "server", "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth")
    make_cert(directory, "client", "ca", "extendedKeyUsage=clientAuth")
    make_cert(directory, "stranger", "other", "extendedKeyUsage=clientAuth")
    return directory


def client_tls(pki: Path, ca: str = "ca", cert: str | None = "client") -> dict[str, str]:
    options = {"tls_ca": str(pki / f"{ca}.pem")}
    if cert is not None:
        options |= {"tls_cert": str(pki / f"{cert}.pem"), "tls_key": str(pki / f"{cert}.key")}
    return options
