"""Hostile credential files in a ClusterConfig: an nkey seed, a creds file, or PEM files
that exist but do not hold what their field says. Each is a ``TransportError`` naming
the field before any connection is tried (the server URL here is never reached), not a
connect-time parse error nor, for a creds file without a JWT, a loop thread reading the
file forever. Afterwards, a node with good credentials joins and answers a call."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import nkeys
import pytest
import trio

from airssys_actors import Actor, Kind, Node
from airssys_actors._clusterconfig import ClusterConfig
from airssys_actors._transport import NatsTransport, TransportError
from airssys_cli.natsserver import NatsServer

from ..cluster.credentials import client_tls, keypair, make_pki, new_user_nkey, nkey_server_config, write_creds

NOWHERE = "nats://127.0.0.1:1"


def seed_text() -> str:
    return keypair(nkeys.PREFIX_BYTE_USER)[0].decode()


def creds_text(tmp_path: Path) -> str:
    write_creds(tmp_path / "good.creds", keypair(nkeys.PREFIX_BYTE_ACCOUNT)[1])
    return (tmp_path / "good.creds").read_text()


def without_block(text: str, name: str) -> str:
    lines = text.splitlines(keepends=True)
    begin = next(i for i, line in enumerate(lines) if f"BEGIN {name}" in line)
    return "".join(lines[:begin] + lines[begin + 3:])


SEEDS = {
    "empty": lambda tmp: "",
    "words": lambda tmp: "not a seed\n",
    "truncated": lambda tmp: seed_text()[:20] + "\n",
    "a public key": lambda tmp: keypair(nkeys.PREFIX_BYTE_USER)[1].public_key.decode() + "\n",
    "too long": lambda tmp: seed_text() + "A" * 40 + "\n",
    "binary": lambda tmp: "\x00\xff\x7f" * 30,
    "huge": lambda tmp: "S" * (100 * 1024),
}

CREDS = {
    "empty": lambda tmp: "",
    "no JWT (nats-py read it forever)": lambda tmp: without_block(creds_text(tmp), "NATS USER JWT"),
    "no seed": lambda tmp: without_block(creds_text(tmp), "USER NKEY SEED"),
    "markers only": lambda tmp: "-----BEGIN NATS USER JWT-----\n\n-----BEGIN USER NKEY SEED-----\n",
    "a JWT that is not one": lambda tmp: creds_text(tmp).replace(".", "", 1),
    "a bad seed": lambda tmp: creds_text(tmp).replace("\nSU", "\nXX", 1),
    "a seed file": lambda tmp: seed_text() + "\n",
    "huge": lambda tmp: "-----BEGIN NATS USER JWT-----\n" + "a" * (100 * 1024),
}


async def refused_before_connecting(config: ClusterConfig, field: str) -> str:
    threads = {t.name for t in threading.enumerate()}
    transport = NatsTransport(config, lambda batch: None)
    started = time.monotonic()
    with trio.fail_after(5), pytest.raises(TransportError) as caught:
        await transport.start(["t.>"])
    await transport.close()
    assert type(caught.value) is TransportError  # not ClusterUnreachable: nothing was tried
    assert time.monotonic() - started < 1.0
    assert str(caught.value).startswith(f"{field}:"), caught.value
    assert {t.name for t in threading.enumerate()} <= threads  # no NATS thread was started
    return str(caught.value)


@pytest.mark.parametrize("case", list(SEEDS))
async def test_a_bad_nkey_seed_file_names_the_field(case, tmp_path):
    path = tmp_path / "bad.nk"
    path.write_text(SEEDS[case](tmp_path), errors="surrogateescape")
    await refused_before_connecting(ClusterConfig(NOWHERE, nkeys_seed=str(path)), "nkeys_seed")


@pytest.mark.parametrize("case", list(CREDS))
async def test_a_bad_creds_file_names_the_field(case, tmp_path):
    path = tmp_path / "bad.creds"
    path.write_text(CREDS[case](tmp_path))
    await refused_before_connecting(ClusterConfig(NOWHERE, creds=str(path)), "creds")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_cases(pki: Path, tmp: Path) -> dict[str, tuple[str, dict[str, str]]]:
    (tmp / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    (tmp / "empty.pem").write_text("")
    good = client_tls(pki)
    return {
        "garbage CA": ("tls_ca", {**good, "tls_ca": str(tmp / "garbage.pem")}),
        "empty CA": ("tls_ca", {**good, "tls_ca": str(tmp / "empty.pem")}),
        "a key as the CA": ("tls_ca", {**good, "tls_ca": good["tls_key"]}),
        "garbage cert": ("tls_cert", {**good, "tls_cert": str(tmp / "garbage.pem")}),
        "garbage key": ("tls_cert", {**good, "tls_key": str(tmp / "garbage.pem")}),
        "another cert's key": ("tls_cert", {**good, "tls_key": str(pki / "stranger.key")}),
        "a cert as the key": ("tls_cert", {**good, "tls_key": good["tls_cert"]}),
    }


@pytest.mark.parametrize("case", ["garbage CA", "empty CA", "a key as the CA", "garbage cert", "garbage key",
                                  "another cert's key", "a cert as the key"])
async def test_bad_tls_files_name_the_field(case, pki, tmp_path):
    field, options = tls_cases(pki, tmp_path)[case]
    await refused_before_connecting(ClusterConfig(NOWHERE, **options), field)


class Echo(Actor):
    async def handle(self, ctx, msg):
        return msg.value if msg.kind == Kind.CALL else None


async def test_after_bad_files_a_node_with_good_credentials_joins_and_answers(tmp_path):
    good_seed = tmp_path / "good.nk"
    conf = tmp_path / "nats.conf"
    conf.write_text(nkey_server_config(new_user_nkey(good_seed)))
    bad_seed = tmp_path / "bad.nk"
    bad_seed.write_text("not a seed\n")
    with NatsServer().start(tmp_path / "nats", config_file=conf) as server:
        for _ in range(3):
            with pytest.raises(TransportError, match=r"^nkeys_seed:"):
                async with Node("x", cluster=ClusterConfig(server.url, nkeys_seed=str(bad_seed))):
                    pass
        with trio.fail_after(10):
            async with Node("x", cluster=ClusterConfig(server.url, nkeys_seed=str(good_seed))) as node:
                echo = await node.spawn(Echo)
                assert await node.call(echo, "still here") == "still here"
                assert any(n.get("self") and n["up"] for n in node.cluster_nodes())
