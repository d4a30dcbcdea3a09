"""Cluster credentials against a real nats-server: an nkey user, a ``.creds`` file (a
user JWT and its seed, under an operator and account made here with nkeys, no ``nsc``),
and TLS with client certificates (mutual TLS). Two in-process nodes with the credential
find each other and call across; a wrong credential is a clear ``ClusterUnreachable``
within ``connect_timeout``, never a hang. The server configs are the ones docs/security.md
shows ("The cluster connection")."""

from __future__ import annotations

import time
from pathlib import Path

import nkeys
import pytest
import trio

from airssys_actors import Actor, Kind, Node
from airssys_actors._transport import ClusterUnreachable
from airssys_cli.natsserver import NatsServer

from .credentials import (
    client_tls,
    keypair,
    make_pki,
    new_user_nkey,
    nkey_server_config,
    operator_server_config,
    tls_server_config,
    write_creds,
)
from .nodes import config, wait_up


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


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_server(tmp_path, pki):
    server = start_server(tmp_path, tls_server_config(pki))
    try:
        yield server
    finally:
        server.stop()


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
