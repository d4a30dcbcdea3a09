"""A node's cluster credential files, checked before any connection is tried: each must
exist and hold what its field says (an nkey seed, a creds file with a user JWT and seed,
PEM certificates and key), else an error naming the field. nats-py would otherwise fail
each connect attempt with a bare parse error, or, for a creds file without a JWT line,
read the file forever on its loop thread."""

from __future__ import annotations

import os
import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._clusterconfig import ClusterConfig

#: Seeds are 58 characters, creds files about 1 KiB: anything much bigger is not one.
_FILE_LIMIT = 64 * 1024
_JWT_BEGIN = b"BEGIN NATS USER JWT"
_SEED_BEGIN = b"BEGIN USER NKEY SEED"


class BadCredential(Exception):
    """A credential file is missing or does not hold what its field names."""


def check_credentials(config: ClusterConfig) -> ssl.SSLContext | None:
    """Check every credential file ``config`` names; the TLS context to connect with
    (``None`` when no TLS option is set). Raises :class:`BadCredential` naming the field."""
    for field in ("nkeys_seed", "creds", "tls_ca", "tls_cert", "tls_key"):
        path = getattr(config, field)
        if path is not None and not os.path.isfile(path):
            raise BadCredential(f"{field}: no such file: {path!r}")
    if config.nkeys_seed is not None or config.creds is not None:
        try:
            import nkeys  # noqa: F401
        except ImportError:
            field = "nkeys_seed" if config.nkeys_seed is not None else "creds"
            raise BadCredential(f"{field} needs the nkeys package (pip install nkeys)") from None
    if config.nkeys_seed is not None:
        _check_seed("nkeys_seed", config.nkeys_seed, bytearray(_read("nkeys_seed", config.nkeys_seed).strip()))
    if config.creds is not None:
        _check_creds(config.creds)
    return _tls_context(config)


def _read(field: str, path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read(_FILE_LIMIT + 1)
    except OSError as exc:
        raise BadCredential(f"{field}: cannot read {path!r}: {exc.strerror or exc}") from None
    if len(data) > _FILE_LIMIT:
        raise BadCredential(f"{field}: {path!r} is over {_FILE_LIMIT // 1024} KiB: not a credentials file")
    return data


def _check_seed(field: str, path: str, seed: bytearray) -> None:
    import nkeys

    try:
        nkeys.from_seed(seed).wipe()
    except Exception:  # nkeys' own errors, or PyNaCl's for a seed of the wrong length
        raise BadCredential(f"{field}: {path!r} does not hold a valid nkey seed (one line, 'SU...')") from None
    finally:
        seed[:] = bytes(len(seed))


def _check_creds(path: str) -> None:
    lines = _read("creds", path).splitlines()

    def block(marker: bytes, what: str) -> bytearray:
        # The line after the marker, as nats-py reads it.
        for i, line in enumerate(lines[:-1]):
            if marker in line and lines[i + 1].strip():
                return bytearray(lines[i + 1].strip())
        raise BadCredential(f"creds: {path!r} has no {what} (a '-----{marker.decode()}-----' line, then the value)")

    jwt = block(_JWT_BEGIN, "user JWT")
    if jwt.count(b".") != 2:
        raise BadCredential(f"creds: {path!r}: the user JWT is not a JWT (three dot-separated parts)")
    _check_seed("creds", path, block(_SEED_BEGIN, "user nkey seed"))


def _tls_context(config: ClusterConfig) -> ssl.SSLContext | None:
    if config.tls_ca is None and config.tls_cert is None:
        return None
    try:
        context = ssl.create_default_context(cafile=config.tls_ca)
    except (ssl.SSLError, OSError) as exc:
        raise BadCredential(f"tls_ca: {config.tls_ca!r} holds no PEM CA certificate ({exc})") from None
    if config.tls_cert is not None:
        try:
            context.load_cert_chain(config.tls_cert, config.tls_key)
        except (ssl.SSLError, OSError) as exc:
            raise BadCredential(f"tls_cert: {config.tls_cert!r} and tls_key: {config.tls_key!r} are not a PEM "
                                f"certificate and its private key ({exc})") from None
    return context
