"""The host side of the sandbox that guests do not reach but operators do: the control
socket of ``airssys run``."""

from __future__ import annotations

import stat

import trio

from airssys_cli.control import ControlServer


async def test_the_control_socket_is_only_for_its_user(node, tmp_path):
    private = tmp_path / "private"
    server = ControlServer(node, None, private / "control.sock", {})  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        assert stat.S_IMODE((private / "control.sock").stat().st_mode) == 0o600
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        nursery.cancel_scope.cancel()


async def test_the_control_socket_leaves_an_existing_directory_alone(node, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    server = ControlServer(node, None, shared / "control.sock", {})  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        nursery.cancel_scope.cancel()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
