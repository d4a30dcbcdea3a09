"""A guest that imports WASI (examples/python_guest/fsprobe, built without --stub-wasi)
tries to get out of what it was granted: through symlinks it plants in a writable
directory, through symlinks someone else planted on the host, by renaming or creating
outside, and, with no grant at all, by looking for files, variables, input and the
network (tests/guests/netprobe.wat calls wasi:sockets itself). Each attempt fails with
an error the guest sees (nothing of the host leaks, the host's files are untouched) and
the node goes on serving. WASI the host does not offer is refused at load, naming it;
WASI exit ends that process alone with a named reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from airssys_actors import CallFailed, Capabilities, Component, ComponentWorldMismatch, Limits, Preopen, WasiGrant

from ..conftest import GUESTS
from ..isolation.guests import ECHO, FSPROBE, assert_serving

pytestmark = pytest.mark.skipif(not FSPROBE.exists(), reason="build the Python guests first: make python-guest")

SECRET = "the host's secret"


@pytest.fixture(scope="module")
def fsprobe() -> Component:
    return Component.load(FSPROBE, version="fsprobe")


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """tmp/secret.txt, tmp/victim.txt and tmp/rw (granted writable, empty) beside them."""
    (tmp_path / "rw").mkdir()
    (tmp_path / "secret.txt").write_text(SECRET)
    (tmp_path / "victim.txt").write_text("untouched")
    return tmp_path


def _writable(host: Path) -> Capabilities:
    return Capabilities(wasi=WasiGrant(dirs=[Preopen(host / "rw", "/rw", writable=True)]))


def _is_error(reply: object) -> bool:
    return isinstance(reply, list) and len(reply) == 2 and reply[0] == "error"


def _refused(reply: object) -> bool:
    """An error the guest sees, which does not carry the host's secret."""
    return _is_error(reply) and SECRET not in reply[1]


def _host_unchanged(host: Path) -> None:
    assert (host / "secret.txt").read_text() == SECRET
    assert (host / "victim.txt").read_text() == "untouched"
    assert sorted(p.name for p in host.iterdir()) == ["rw", "secret.txt", "victim.txt"]


# -- symlinks the guest plants ------------------------------------------------------------

@pytest.mark.parametrize("target", ["/etc", "SECRET_ABSOLUTE", "/rw/../secret.txt"])
async def test_a_guest_cannot_plant_a_symlink_to_an_absolute_path(node, fsprobe, host, target):
    target = str(host / "secret.txt") if target == "SECRET_ABSOLUTE" else target
    pid = await node.spawn(fsprobe, capabilities=_writable(host))
    assert _refused(await node.call(pid, ["symlink", target, "/rw/link"]))
    assert _refused(await node.call(pid, ["read", "/rw/link"]))
    assert _refused(await node.call(pid, ["list", "/rw/link"]))
    assert _refused(await node.call(pid, ["read", "/rw/link/passwd"]))
    _host_unchanged(host)
    await assert_serving(node)


@pytest.mark.parametrize("target, through", [
    ("../secret.txt", "/rw/up"),            # a file one level up
    ("..", "/rw/up/secret.txt"),            # the parent directory
    ("../../../../../../etc", "/rw/up/passwd"),
    ("x/../../secret.txt", "/rw/up"),       # up, disguised
])
async def test_a_symlink_the_guest_plants_cannot_be_followed_out(node, fsprobe, host, target, through):
    # Creating a relative symlink is allowed (it is only text in a granted directory);
    # following it out of the directory is not, for reading, listing or writing.
    pid = await node.spawn(fsprobe, capabilities=_writable(host))
    assert await node.call(pid, ["symlink", target, "/rw/up"]) == "ok"
    assert await node.call(pid, ["readlink", "/rw/up"]) == target
    assert _refused(await node.call(pid, ["read", through]))
    assert _refused(await node.call(pid, ["list", "/rw/up"]))
    assert _refused(await node.call(pid, ["write", through, "overwritten"]))
    assert _refused(await node.call(pid, ["write", "/rw/up/victim.txt", "overwritten"]))
    _host_unchanged(host)
    assert await node.call(pid, "ping") == "pong"
    await assert_serving(node)


async def test_a_symlink_that_stays_inside_still_works(node, fsprobe, host):
    """The refusals above are about leaving the directory, not about symlinks as such."""
    pid = await node.spawn(fsprobe, capabilities=_writable(host))
    assert await node.call(pid, ["mkdir", "/rw/sub"]) == "ok"
    assert await node.call(pid, ["write", "/rw/sub/inner.txt", "inside"]) == "ok"
    assert await node.call(pid, ["symlink", "sub/inner.txt", "/rw/inner"]) == "ok"
    assert await node.call(pid, ["read", "/rw/inner"]) == "inside"
    assert await node.call(pid, ["symlink", "../inner", "/rw/sub/back"]) == "ok"
    assert await node.call(pid, ["read", "/rw/sub/back"]) == "inside"


@pytest.mark.parametrize("command", [
    ["rename", "/rw/mine.txt", "/rw/../moved.txt"],
    ["mkdir", "/rw/../newdir"],
    ["write", "/rw/../new.txt", "x"],
    ["rename", "/rw/../victim.txt", "/rw/stolen.txt"],
])
async def test_nothing_is_created_moved_or_taken_outside(node, fsprobe, host, command):
    pid = await node.spawn(fsprobe, capabilities=_writable(host))
    assert await node.call(pid, ["write", "/rw/mine.txt", "mine"]) == "ok"
    assert _refused(await node.call(pid, command))
    _host_unchanged(host)
    assert (host / "rw" / "mine.txt").read_text() == "mine"


# -- symlinks someone else planted on the host ---------------------------------------------

@pytest.mark.parametrize("planted, through", [
    ("SECRET", "/rw/planted"),
    ("HOST", "/rw/planted/secret.txt"),     # a directory symlink to the host's folder
    ("/etc", "/rw/planted/passwd"),
    ("VICTIM", "/rw/planted"),              # the write below must not reach it
])
async def test_a_symlink_planted_on_the_host_leads_nowhere(node, fsprobe, host, planted, through):
    target = {"SECRET": host / "secret.txt", "HOST": host, "VICTIM": host / "victim.txt"}.get(planted, planted)
    (host / "rw" / "planted").symlink_to(target)
    pid = await node.spawn(fsprobe, capabilities=_writable(host))
    assert _refused(await node.call(pid, ["read", through]))
    assert _refused(await node.call(pid, ["write", through, "overwritten"]))
    assert _refused(await node.call(pid, ["list", "/rw/planted"]))
    _host_unchanged(host)
    await assert_serving(node)


# -- no grant at all: an empty WASI context -----------------------------------------------

async def test_without_a_grant_a_wasi_guest_spawns_and_sees_nothing(node, fsprobe, host, monkeypatch, capfd):
    monkeypatch.setenv("AIRSSYS_TEST_HOST_SECRET", SECRET)
    pid = await node.spawn(fsprobe)  # no capabilities: the default grants nothing
    assert await node.call(pid, "ping") == "pong"
    for path in ("/", ".", "/etc", "/tmp", str(host), "/rw"):
        assert _refused(await node.call(pid, ["list", path])), path
    for path in ("/etc/passwd", str(host / "secret.txt"), "secret.txt", "../secret.txt"):
        assert _refused(await node.call(pid, ["read", path])), path
    for command in (["write", "/x.txt", "x"], ["write", str(host / "rw" / "x.txt"), "x"],
                    ["mkdir", "/newdir"], ["symlink", "/etc", "/l"]):
        assert _refused(await node.call(pid, command)), command
    assert await node.call(pid, "environ") == []
    assert await node.call(pid, ["env", "AIRSSYS_TEST_HOST_SECRET"]) is None
    assert await node.call(pid, ["env", "PATH"]) is None
    assert await node.call(pid, "stdin") == ""               # closed: read at once, empty
    assert await node.call(pid, ["print", "guest-output-marker"]) == "ok"
    captured = capfd.readouterr()
    assert "guest-output-marker" not in captured.out + captured.err  # discarded
    _host_unchanged(host)
    assert list((host / "rw").iterdir()) == []
    await assert_serving(node)


async def test_without_a_grant_clocks_and_randomness_work(node, fsprobe):
    pid = await node.spawn(fsprobe)
    wall, monotonic = await node.call(pid, "clock")
    assert wall > 1.6e9 and monotonic >= 0
    first, second = await node.call(pid, "random"), await node.call(pid, "random")
    assert len(first) == 16 and first != second


@pytest.mark.parametrize("command", [["connect", "127.0.0.1", 9], ["listen", "127.0.0.1", 0],
                                     ["resolve", "localhost"]])
async def test_without_a_grant_there_is_no_network(node, fsprobe, command):
    # (componentize-py's Python has no socket module at all: these fail before WASI;
    # netprobe below calls wasi:sockets itself.)
    pid = await node.spawn(fsprobe)
    assert _is_error(await node.call(pid, command))
    assert await node.call(pid, "ping") == "pong"


ACCESS_DENIED = 1 + 1  # netprobe's code: 1 + the index of error-code.access-denied
NOT_TRIED = 99


@pytest.mark.parametrize("grant", [None, "writable dir and env"])
async def test_wasi_sockets_are_denied_grant_or_not(node, host, grant):
    """tests/guests/netprobe.wat calls wasi:sockets directly: the name lookup fails, and
    creating a TCP socket is denied, so nothing connects to a listener on the host."""
    import socket

    caps = None if grant is None else Capabilities(wasi=WasiGrant(
        dirs=[Preopen(host / "rw", "/rw", writable=True)], env={"K": "v"}))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.3)
        port = listener.getsockname()[1]
        pid = await node.spawn(str(GUESTS / "netprobe.wat"), capabilities=caps)
        lookup, create, connect, bind = await node.call(pid, port)
        assert lookup != 0
        assert create == ACCESS_DENIED and connect == NOT_TRIED and bind == NOT_TRIED
        with pytest.raises(TimeoutError):
            listener.accept()
    assert await node.call(pid, port) == [lookup, create, connect, bind]  # and again: it goes on
    await assert_serving(node)


async def test_no_grant_and_an_empty_grant_are_the_same(node, fsprobe, host):
    bare = await node.spawn(fsprobe)
    empty = await node.spawn(fsprobe, capabilities=Capabilities(wasi=WasiGrant()))
    for command in ("environ", ["list", "/"], ["read", str(host / "secret.txt")], "stdin"):
        assert await node.call(bare, command) == await node.call(empty, command)


# -- WASI that fails -------------------------------------------------------------------------

ECHO_TEXT = Path(ECHO).read_text()
TYPES_IMPORT = '(import "airssys:actor/types@0.1.0" (instance $types (type $types-t)))'


@pytest.mark.parametrize("interface, item, func", [
    ("wasi:http/outgoing-handler@0.2.0", "handle", "(func)"),          # not linked at all
    ("wasi:nn/inference@0.2.0-rc-2024-10-28", "compute", "(func)"),     # not in wasmtime's WASI
    ("wasi:cli/environment@0.3.0", "get-environment", "(func (result (list (tuple string string))))"),
    ("wasi:filesystem/preopens@0.2.0", "get-root", "(func (result u32))"),
])
async def test_wasi_the_host_does_not_offer_is_refused_at_load_naming_it(node, interface, item, func):
    assert ECHO_TEXT.count(TYPES_IMPORT) == 1
    source = ECHO_TEXT.replace(TYPES_IMPORT, f'{TYPES_IMPORT}\n  (import "{interface}" (instance (export "{item}" {func})))')
    with pytest.raises(ComponentWorldMismatch) as info:
        await node.spawn(source.encode())
    assert info.value.problems == [f"imports {interface}#{item}, which the host does not provide"]
    assert node.pids() == []
    await assert_serving(node)


async def test_wasi_exit_ends_that_process_alone_with_a_named_reason(node, fsprobe):
    other = await node.spawn(fsprobe)
    doomed = await node.spawn(fsprobe)
    with pytest.raises(CallFailed) as info:
        await node.call(doomed, ["exit", 7])
    assert info.value.reason.kind == "trap"
    # WASI 0.2's exit carries only success or failure: any non-zero code is status 1.
    assert "exit status 1" in info.value.reason.detail
    assert await node.call(other, "ping") == "pong"
    await assert_serving(node)


@pytest.mark.parametrize("threaded", [False, True])
@pytest.mark.parametrize("seconds", [0, 0.5, 1e9])
async def test_a_wasi_sleep_traps_at_once_naming_the_call(node, fsprobe, threaded, seconds):
    """A WASI sleep would block the thread running the guest inside the host, where no
    deadline or kill reaches it: the monotonic clock's timers are refused, so the sleeper
    alone ends with a trap naming the WASI function, at once, and the node serves."""
    other = await node.spawn(fsprobe)
    sleeper = await node.spawn(fsprobe, limits=Limits(deadline=30), threaded=threaded)
    with trio.fail_after(20):  # far less than the sleep or the deadline: nothing blocked
        with pytest.raises(CallFailed) as info:
            await node.call(sleeper, ["sleep", seconds], timeout=60)
    assert info.value.reason.kind == "trap"
    assert "unsupported WASI call wasi:clocks/monotonic-clock#subscribe-" in info.value.reason.detail
    assert await node.call(other, "clock")  # the clock itself still works
    await assert_serving(node)
