"""Hostile cluster flags of `airssys node` / `airssys run`: each bad value is refused
before the node starts, with an error naming the flag; an unreachable cluster is a clear
error, not a hang."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import AIRSSYS, ROOT


@pytest.mark.parametrize(("flags", "named"), [
    (["--cluster", "ftp://127.0.0.1:1"], "--cluster"),
    (["--cluster", "nats://127.0.0.1:1", "--cluster-name", "a.b"], "--cluster-name"),
    (["--cluster", "nats://127.0.0.1:1", "--heartbeat", "inf"], "--heartbeat"),
    (["--cluster", "nats://127.0.0.1:1", "--heartbeat", "2", "--down-after", "1"], "--down-after"),
    (["--cluster", "nats://127.0.0.1:1", "--tls-key", "k.pem"], "--tls-key"),
])
def test_bad_cluster_flags_name_the_flag(tmp_path, flags, named):
    done = subprocess.run([*AIRSSYS, "node", "--name", "a", *flags], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "AIRSSYS_SOCKET": str(tmp_path / "s")})
    assert done.returncode == 2, done.stderr
    assert named in done.stderr


def test_a_node_name_that_is_no_subject_token_is_refused(tmp_path):
    done = subprocess.run([*AIRSSYS, "node", "--name", "a*b", "--cluster", "nats://127.0.0.1:1"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, env={"PATH": "/usr/bin:/bin", "AIRSSYS_SOCKET": str(tmp_path / "s")})
    assert done.returncode != 0 and "name" in done.stderr


def test_an_unreachable_cluster_is_a_clear_error(tmp_path):
    done = subprocess.run([*AIRSSYS, "node", "--name", "a", "--cluster", "nats://127.0.0.1:1"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, env={"PATH": "/usr/bin:/bin", "AIRSSYS_SOCKET": str(tmp_path / "s")})
    assert done.returncode == 1 and "no NATS server answered" in done.stderr
