"""The flags that put ``airssys run`` / ``airssys node`` in a cluster, and the
:class:`~airssys_actors.ClusterConfig` they make. Secrets come from the environment
(``AIRSSYS_CLUSTER_TOKEN``, ``AIRSSYS_CLUSTER_USER``, ``AIRSSYS_CLUSTER_PASSWORD``), never
from the command line, where any user of the machine can read them; files (nkey seed,
creds, TLS) are named by flags."""

from __future__ import annotations

import argparse
import os
from typing import Any

from airssys_actors import ClusterConfig
from airssys_actors._checks import InvalidType, InvalidValue

SECRETS = {"token": "AIRSSYS_CLUSTER_TOKEN", "user": "AIRSSYS_CLUSTER_USER", "password": "AIRSSYS_CLUSTER_PASSWORD"}


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cluster", "join a cluster over NATS (see docs/distribution.md)")
    group.add_argument("--cluster", metavar="URL", default=None,
                       help="NATS server URL (e.g. nats://127.0.0.1:4222; see `airssys cluster up`)")
    group.add_argument("--cluster-name", metavar="NAME", default="default",
                       help="the cluster's name: nodes of one cluster share it (default 'default')")
    for flag, help_text in (("nkeys-seed", "file with this node's nkey seed"), ("creds", "a NATS .creds file"),
                            ("tls-ca", "CA certificate to verify the server"), ("tls-cert", "client certificate"),
                            ("tls-key", "client certificate's key")):
        group.add_argument(f"--{flag}", metavar="FILE", default=None, help=help_text)
    for flag, default in (("heartbeat", 0.25), ("suspect-after", 0.6), ("down-after", 1.0)):
        group.add_argument(f"--{flag}", metavar="SECONDS", type=float, default=default,
                           help=f"failure detector timing (default {default:g})")


def cluster_config(args: argparse.Namespace) -> ClusterConfig | None:
    """The config the flags describe, or None without ``--cluster``; raises
    ``argparse.ArgumentTypeError`` naming the flag for a bad value."""
    if args.cluster is None:
        return None
    fields: dict[str, Any] = {key: os.environ.get(var) or None for key, var in SECRETS.items()}
    for key in ("nkeys_seed", "creds", "tls_ca", "tls_cert", "tls_key"):
        fields[key] = getattr(args, key)
    try:
        return ClusterConfig(args.cluster, cluster=args.cluster_name, heartbeat=args.heartbeat,
                             suspect_after=args.suspect_after, down_after=args.down_after, **fields)
    except (InvalidValue, InvalidType) as exc:
        flag = {"servers": "cluster", "cluster": "cluster-name"}.get(exc.name, exc.name.replace("_", "-"))
        raise argparse.ArgumentTypeError(f"--{flag}: {exc}") from None
