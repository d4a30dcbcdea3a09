"""Cluster credentials against a real nats-server: an nkey user, a ``.creds`` file (a
user JWT and its seed, under an operator and account made here with nkeys, no ``nsc``),
and TLS with client certificates (mutual TLS). Two in-process nodes with the credential find each other and
call across; a wrong credential is a clear ``ClusterUnreachable`` within
``connect_timeout``, never a hang. The server configs are the ones docs/security.md
shows ("The cluster connection")."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import nkeys
import pytest
import trio

from airssys_actors import Actor, Kind, Node
from airssys_actors._transport import ClusterUnreachable
from airssys_cli.natsserver import NatsServer

from .nodes import config, wait_up

OPENSSL = "/usr/bin/openssl"


class Echo(Actor):
    async def handle(self, ctx, msg):
        return msg.value if msg.kind == Kind.CALL else None


def start_server(tmp_path: Path, conf_text: str) -> NatsServer:
    conf = tmp_path / "nats.conf"
    conf.write_text(conf_text)
    return NatsServer().start(tmp_path / "nats", config_file=conf)


async def two_nodes_call_across(**credentials) -> None:
    """Nodes a and b, each with ``credentials``, see each other up and a calls an echo on b."""
    with trio.fail_after(15):
        async with Node("a", cluster=config(**credentials)) as a, Node("b", cluster=config(**credentials)) as b:
            echo = await b.spawn(Echo)
            await wait_up(a, "b")
            await wait_up(b, "a")
            assert await a.call(echo, "across") == "across"


async def refused(**credentials) -> str:
    """The ClusterUnreachable text for a node joining with ``credentials``; it must come
    within about connect_timeout (1 s), not hang."""
    started = trio.current_time()
    with trio.fail_after(10), pytest.raises(ClusterUnreachable) as error:
        async with Node("x", cluster=config(connect_timeout=1.0, **credentials)):
            pass
    assert trio.current_time() - started < 5
    return str(error.value)


# ---- nkeys ---------------------------------------------------------------------------


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


@pytest.fixture
def nkey_server(tmp_path):
    seed_file = tmp_path / "node.nk"
    server = start_server(tmp_path, nkey_server_config(new_user_nkey(seed_file)))
    try:
        yield server, seed_file
    finally:
        server.stop()


async def test_nodes_with_an_nkey_seed_join_and_call_each_other(nkey_server):
    server, seed_file = nkey_server
    assert seed_file.read_text().startswith("SU")
    await two_nodes_call_across(url=server.url, nkeys_seed=str(seed_file))


async def test_an_nkey_the_server_does_not_know_is_refused_clearly(nkey_server, tmp_path):
    server, _ = nkey_server
    other = tmp_path / "other.nk"
    new_user_nkey(other)
    text = await refused(url=server.url, nkeys_seed=str(other))
    assert "authorization violation" in text.lower()


async def test_no_credentials_on_an_nkey_server_is_refused_clearly(nkey_server):
    server, _ = nkey_server
    text = await refused(url=server.url)
    assert "authorization violation" in text.lower()


# ---- creds (JWT) -----------------------------------------------------------------------


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


@pytest.fixture
def operator_server(tmp_path):
    conf, account = operator_server_config()
    server = start_server(tmp_path, conf)
    try:
        yield server, account
    finally:
        server.stop()


async def test_nodes_with_a_creds_file_join_and_call_each_other(operator_server, tmp_path):
    server, account = operator_server
    write_creds(tmp_path / "node.creds", account)
    await two_nodes_call_across(url=server.url, creds=str(tmp_path / "node.creds"))


async def test_a_user_of_an_account_the_server_does_not_trust_is_refused_clearly(operator_server, tmp_path):
    server, _ = operator_server
    _, stranger = keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    write_creds(tmp_path / "stranger.creds", stranger)
    text = await refused(url=server.url, creds=str(tmp_path / "stranger.creds"))
    assert "authorization violation" in text.lower()


async def test_an_expired_user_jwt_is_refused_clearly(operator_server, tmp_path):
    server, account = operator_server
    write_creds(tmp_path / "expired.creds", account, exp=int(time.time()) - 60)
    text = await refused(url=server.url, creds=str(tmp_path / "expired.creds"))
    assert "authorization violation" in text.lower()


# ---- TLS -----------------------------------------------------------------------------


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


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate it signed, and
    a second CA (``other``) that signed nothing the server presents."""
    directory = tmp_path_factory.mktemp("pki")
    make_ca(directory, "ca")
    make_ca(directory, "other")
    make_cert(directory, "server", "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth")
    make_cert(directory, "client", "ca", "extendedKeyUsage=clientAuth")
    make_cert(directory, "stranger", "other", "extendedKeyUsage=clientAuth")
    return directory


@pytest.fixture
def tls_server(tmp_path, pki):
    server = start_server(tmp_path, tls_server_config(pki))
    try:
        yield server
    finally:
        server.stop()


def client_tls(pki: Path, ca: str = "ca", cert: str | None = "client") -> dict[str, str]:
    options = {"tls_ca": str(pki / f"{ca}.pem")}
    if cert is not None:
        options |= {"tls_cert": str(pki / f"{cert}.pem"), "tls_key": str(pki / f"{cert}.key")}
    return options


@pytest.mark.parametrize("scheme", ["tls", "nats"])
async def test_nodes_with_client_certificates_join_and_call_each_other(tls_server, pki, scheme):
    # nats-py upgrades a nats:// connection when the server's INFO says tls_required, so
    # both schemes reach a TLS-only server.
    url = f"{scheme}://127.0.0.1:{tls_server.port}"
    await two_nodes_call_across(url=url, **client_tls(pki))


async def test_no_client_certificate_is_refused_clearly(tls_server, pki):
    text = await refused(url=f"tls://127.0.0.1:{tls_server.port}", **client_tls(pki, cert=None))
    assert "certificate required" in text.lower()


async def test_a_client_certificate_the_server_ca_did_not_sign_is_refused_clearly(tls_server, pki):
    text = await refused(url=f"tls://127.0.0.1:{tls_server.port}", **client_tls(pki, cert="stranger"))
    assert "unknown ca" in text.lower()


async def test_a_ca_that_did_not_sign_the_server_is_refused_clearly(tls_server, pki):
    text = await refused(url=f"tls://127.0.0.1:{tls_server.port}", **client_tls(pki, ca="other"))
    assert "certificate verify failed" in text.lower()


async def test_no_tls_on_a_tls_server_is_refused_clearly(tls_server):
    # nats-py upgrades to TLS (the server requires it) with the system's CAs, which did
    # not sign this server.
    text = await refused(url=tls_server.url)
    assert "certificate verify failed" in text.lower()
