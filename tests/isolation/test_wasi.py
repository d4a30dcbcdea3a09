"""WASI: a guest built against WASI (examples/python_guest/fsprobe, compiled WITHOUT
--stub-wasi) sees exactly what its ``Capabilities(wasi=WasiGrant(...))`` grants: no grant,
an empty WASI context (no directories, no environment, no network); preopened
directories, read-only unless granted writable, and nothing outside them; only the
environment variables named. (Symlink escapes, the empty default and unsupported calls
are attacked in tests/hostile/test_wasi_escape.py.)"""

from __future__ import annotations

import pytest

from airssys_actors import CallFailed, Capabilities, Component, Preopen, WasiGrant

from .guests import ECHO, FSPROBE, assert_serving

pytestmark = pytest.mark.skipif(
    not FSPROBE.exists(), reason="build the Python guests first: make python-guest"
)

SECRET = "the host's secret"


@pytest.fixture(scope="module")
def fsprobe():
    return Component.load(FSPROBE, version="fsprobe")


@pytest.fixture
def dirs(tmp_path):
    """tmp/ro (one file), tmp/rw (empty), tmp/secret.txt beside them, and a symlink in ro
    that points at the secret."""
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    (ro / "hello.txt").write_text("hello from the host")
    (tmp_path / "secret.txt").write_text(SECRET)
    (ro / "escape.txt").symlink_to(tmp_path / "secret.txt")
    return tmp_path


def _grant(**kw):
    return Capabilities(wasi=WasiGrant(**kw))


def _is_error(reply) -> bool:
    return isinstance(reply, list) and len(reply) == 2 and reply[0] == "error"


async def test_without_a_grant_the_guest_runs_in_an_empty_wasi_context(node, fsprobe, dirs):
    # No grant is the same as WasiGrant(): the guest starts (componentize-py's runtime reads
    # its environment and clocks when it starts) and sees nothing of the host.
    pid = await node.spawn(fsprobe)
    assert await node.call(pid, "ping") == "pong"
    for command in (["read", "/etc/passwd"], ["read", str(dirs / "secret.txt")], ["list", "/"],
                    ["list", "."], ["write", str(dirs / "rw" / "x.txt"), "x"]):
        assert _is_error(await node.call(pid, command)), command
    assert not (dirs / "rw" / "x.txt").exists()
    assert await node.call(pid, "environ") == []
    assert await node.call(pid, "stdin") == ""
    await assert_serving(node)


async def test_an_empty_grant_gives_no_files_and_no_environment(node, fsprobe, dirs):
    pid = await node.spawn(fsprobe, capabilities=_grant())
    assert await node.call(pid, "ping") == "pong"
    for command in (["read", "/etc/passwd"], ["read", str(dirs / "secret.txt")], ["list", "/"],
                    ["list", "."], ["write", str(dirs / "rw" / "x.txt"), "x"]):
        assert _is_error(await node.call(pid, command)), command
    assert not (dirs / "rw" / "x.txt").exists()
    assert await node.call(pid, "environ") == []
    assert await node.call(pid, ["env", "HOME"]) is None and await node.call(pid, ["env", "PATH"]) is None


async def test_a_read_only_preopen_can_be_read_not_written(node, fsprobe, dirs):
    pid = await node.spawn(fsprobe, capabilities=_grant(dirs=[Preopen(dirs / "ro", "/data")]))
    assert await node.call(pid, ["read", "/data/hello.txt"]) == "hello from the host"
    assert await node.call(pid, ["list", "/data"]) == ["escape.txt", "hello.txt"]
    for command in (["write", "/data/hello.txt", "overwritten"], ["write", "/data/new.txt", "new"]):
        reply = await node.call(pid, command)
        assert _is_error(reply) and "PermissionError" in reply[1], reply
    assert (dirs / "ro" / "hello.txt").read_text() == "hello from the host"
    assert not (dirs / "ro" / "new.txt").exists()


@pytest.mark.parametrize("path", [
    "/data/../secret.txt",          # up and out of the preopen
    "/data/escape.txt",             # a symlink pointing outside
    "../secret.txt",
    "/secret.txt",
    "SECRET_PATH",                  # the host's absolute path
])
async def test_nothing_outside_a_preopen_is_reachable(node, fsprobe, dirs, path):
    pid = await node.spawn(fsprobe, capabilities=_grant(dirs=[Preopen(dirs / "ro", "/data")]))
    path = str(dirs / "secret.txt") if path == "SECRET_PATH" else path
    reply = await node.call(pid, ["read", path])
    assert _is_error(reply) and SECRET not in reply[1]
    assert await node.call(pid, ["read", "/data/hello.txt"]) == "hello from the host"  # still fine


async def test_a_writable_preopen_can_be_written_and_only_it(node, fsprobe, dirs):
    grant = _grant(dirs=[Preopen(dirs / "ro", "/ro"), Preopen(dirs / "rw", "/rw", writable=True)])
    pid = await node.spawn(fsprobe, capabilities=grant)
    assert await node.call(pid, ["write", "/rw/out.txt", "written by the guest"]) == "ok"
    assert (dirs / "rw" / "out.txt").read_text() == "written by the guest"
    assert await node.call(pid, ["read", "/rw/out.txt"]) == "written by the guest"
    assert await node.call(pid, ["list", "/rw"]) == ["out.txt"]
    assert _is_error(await node.call(pid, ["write", "/ro/out.txt", "x"]))        # still read-only
    assert _is_error(await node.call(pid, ["write", "/rw/../out.txt", "x"]))     # no way out
    assert not (dirs / "out.txt").exists() and not (dirs / "ro" / "out.txt").exists()


async def test_the_guest_sees_only_the_granted_environment(node, fsprobe, monkeypatch):
    monkeypatch.setenv("AIRSSYS_TEST_PASSED", "through")
    monkeypatch.setenv("AIRSSYS_TEST_HIDDEN", "hidden")
    monkeypatch.delenv("AIRSSYS_TEST_UNSET", raising=False)
    grant = _grant(env={"K": "v", "EMPTY": ""}, inherit_env=["AIRSSYS_TEST_PASSED", "AIRSSYS_TEST_UNSET"])
    pid = await node.spawn(fsprobe, capabilities=grant)
    assert await node.call(pid, "environ") == ["AIRSSYS_TEST_PASSED", "EMPTY", "K"]
    assert await node.call(pid, ["env", "K"]) == "v"
    assert await node.call(pid, ["env", "AIRSSYS_TEST_PASSED"]) == "through"
    assert await node.call(pid, ["env", "AIRSSYS_TEST_HIDDEN"]) is None
    assert await node.call(pid, ["env", "HOME"]) is None


async def test_each_process_has_its_own_grant(node, fsprobe, tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "who.txt").write_text(name)
    a = await node.spawn(fsprobe, capabilities=_grant(dirs=[Preopen(tmp_path / "a", "/data")], env={"WHO": "a"}))
    b = await node.spawn(fsprobe, capabilities=_grant(dirs=[Preopen(tmp_path / "b", "/data")]))
    assert await node.call(a, ["read", "/data/who.txt"]) == "a"
    assert await node.call(b, ["read", "/data/who.txt"]) == "b"
    assert await node.call(a, ["env", "WHO"]) == "a" and await node.call(b, ["env", "WHO"]) is None


async def test_wasi_exit_ends_only_that_process(node, fsprobe):
    first = await node.spawn(fsprobe, capabilities=_grant())
    second = await node.spawn(fsprobe, capabilities=_grant())
    with pytest.raises(CallFailed) as info:
        await node.call(first, ["exit", 3])
    assert info.value.reason.kind == "trap" and "exit" in info.value.reason.detail
    assert await node.call(second, "ping") == "pong"
    await assert_serving(node)


async def test_no_network_even_with_a_grant(node, fsprobe):
    pid = await node.spawn(fsprobe, capabilities=_grant())
    assert _is_error(await node.call(pid, ["connect", "127.0.0.1", 9]))


async def test_a_grant_to_a_guest_that_does_not_import_wasi_changes_nothing(node, dirs):
    echo = await node.spawn(ECHO, capabilities=_grant(dirs=[Preopen(dirs / "rw", "/rw", writable=True)]))
    assert await node.call(echo, "hi") == "hi"
