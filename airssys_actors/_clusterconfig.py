"""How a node joins a cluster: the NATS servers, the credentials, and the failure
detector's timings. A value: checked once where it is made, naming the field."""

from __future__ import annotations

import re

import attrs

from ._checks import InvalidType, InvalidValue, finite_seconds, positive_int

#: Node and cluster names become NATS subject tokens: no dots, spaces or wildcards.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_token(field: str, value: object) -> str:
    """``value`` if it can be one NATS subject token (letters, digits, ``_``, ``-``; at
    most 64), else an error naming ``field``."""
    if not isinstance(value, str):
        raise InvalidType(field, value, "a str")
    if not _TOKEN.match(value):
        raise InvalidValue(field, value, "1 to 64 letters, digits, '_' or '-' (it is a NATS subject token)")
    return value


def _servers(value: object) -> tuple[str, ...]:
    servers = (value,) if isinstance(value, str) else value
    if not isinstance(servers, (tuple, list)) or not servers:
        raise InvalidType("servers", value, "a nats:// URL or a non-empty list of them")
    for url in servers:
        if not isinstance(url, str) or not re.match(r"^(nats|tls|ws|wss)://[^\s]+$", url):
            raise InvalidValue("servers", url, "a URL like nats://127.0.0.1:4222")
    return tuple(servers)


def _seconds(name: str):
    return lambda value: finite_seconds(name, value, minimum=0.0, exclusive=True, maximum=3600.0)


def _optional_text(name: str):
    def convert(value: object) -> str | None:
        if value is not None and not isinstance(value, str):
            raise InvalidType(name, value, "a str or None")
        return value

    return convert


@attrs.frozen
class ClusterConfig:
    """A node's way into a cluster (``Node(name=..., cluster=ClusterConfig(...))``; a
    plain URL string means ``ClusterConfig(servers=URL)``).

    Timings: a heartbeat every ``heartbeat`` seconds; a peer silent for
    ``suspect_after`` is probed, and one silent for ``down_after`` (or whose probe finds
    no one) is down: every link and monitor toward it fires ``noconnection``.
    """

    servers: tuple[str, ...] = attrs.field(converter=_servers)
    cluster: str = attrs.field(default="default", converter=lambda v: check_token("cluster", v))
    """The cluster's name: subjects start ``air.<cluster>.``, buckets ``AIR_<cluster>_``."""
    token: str | None = attrs.field(default=None, converter=_optional_text("token"), repr=False)
    user: str | None = attrs.field(default=None, converter=_optional_text("user"))
    password: str | None = attrs.field(default=None, converter=_optional_text("password"), repr=False)
    nkeys_seed: str | None = attrs.field(default=None, converter=_optional_text("nkeys_seed"))
    """Path of a file holding this node's nkey seed."""
    creds: str | None = attrs.field(default=None, converter=_optional_text("creds"))
    """Path of a ``.creds`` file (JWT and seed)."""
    tls_ca: str | None = attrs.field(default=None, converter=_optional_text("tls_ca"))
    tls_cert: str | None = attrs.field(default=None, converter=_optional_text("tls_cert"))
    tls_key: str | None = attrs.field(default=None, converter=_optional_text("tls_key"))
    heartbeat: float = attrs.field(default=0.25, converter=_seconds("heartbeat"))
    suspect_after: float = attrs.field(default=0.6, converter=_seconds("suspect_after"))
    down_after: float = attrs.field(default=1.0, converter=_seconds("down_after"))
    window: int = attrs.field(default=1024, converter=lambda v: positive_int("window", v, maximum=1 << 20))
    """Messages in flight from one node to another before a sender waits for credit."""
    connect_timeout: float = attrs.field(default=2.0, converter=_seconds("connect_timeout"))
    reconnect_wait: float = attrs.field(default=0.25, converter=_seconds("reconnect_wait"))
    request_timeout: float = attrs.field(default=2.0, converter=_seconds("request_timeout"))
    """How long a registry (JetStream KV) operation may take."""

    def __attrs_post_init__(self) -> None:
        if not self.heartbeat < self.suspect_after <= self.down_after:
            raise InvalidValue("down_after", self.down_after, "",
                               message=f"need heartbeat < suspect_after <= down_after, got {self.heartbeat:g}, "
                                       f"{self.suspect_after:g}, {self.down_after:g}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InvalidValue("tls_key", self.tls_key, "", message="tls_cert and tls_key go together")
