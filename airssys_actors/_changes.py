"""The node's face of suspend, resume and code change (the change itself is in
:mod:`._codechange`)."""

from __future__ import annotations

from ._codechange import CodeChange, PreloadedCode
from ._codechange import preload as preload_code_change
from ._codechange import prepare as prepare_code_change
from ._codechange import preload_async, prepare_async
from ._delivery import Delivery
from ._errors import NoSuchProcess, UpgradeFailed
from ._pid import Pid
from ._process import Process
from ._wasm import Component


class CodeChanges(Delivery):
    """Suspend, resume and code change (a mixin of :class:`~airssys_actors.Node`)."""

    async def suspend(self, pid: Pid | str) -> None:
        """Return once ``pid`` is between two messages; it takes none until
        :meth:`resume`. Messages sent meanwhile queue (within the mailbox bound), so
        senders may wait. Raises NoSuchProcess if it is not alive (or dies meanwhile)."""
        proc = self._resolve(pid)
        if proc is None or not proc.alive:
            raise NoSuchProcess(pid)
        await proc.suspend()
        if not proc.alive:
            raise NoSuchProcess(pid)

    def resume(self, pid: Pid | str) -> None:
        """Let a suspended process take messages again (no-op if it has exited)."""
        proc = self._resolve(pid)
        if proc is not None:
            proc.resume()

    def preload_code_change(self, pid: Pid | str, component: Component) -> PreloadedCode:
        """Make the new instance a code change of ``pid`` to ``component`` will use, before
        the process is suspended (as OTP loads new code before ``sys:suspend``): the
        pause then holds only the state's move. Pass it to :meth:`prepare_code_change`,
        or ``close()`` it if the change does not happen.

        Raises:
            UpgradeFailed: the process is gone or not WASM, or the new version trapped
            while instantiating.
        """
        return preload_code_change(self._require_process(pid), component)

    def prepare_code_change(self, pid: Pid | str, component: Component, *,
                            defer_free: bool = False, preloaded: PreloadedCode | None = None) -> CodeChange:
        """Migrate a suspended WASM process's state into a new instance of ``component``
        (its ``snapshot``, then the new one's ``upgrade``); commit or roll back the result.
        ``defer_free`` leaves freeing the values the state moved in to the change's
        ``release_old`` (after the resume) or rollback. ``preloaded`` (from
        :meth:`preload_code_change`) supplies the new instance.

        Raises:
            UpgradeFailed: naming the process and the cause; the old version still runs.
        """
        return prepare_code_change(self._require_process(pid), component, defer_free=defer_free,
                                   preloaded=preloaded)

    async def preload_code_change_async(self, pid: Pid | str, component: Component) -> PreloadedCode:
        """:meth:`preload_code_change`; for a threaded guest the new instance is made in
        a worker thread, so that the node keeps serving meanwhile and a kill reaches it."""
        return await preload_async(self._require_process(pid), component)

    async def prepare_code_change_async(self, pid: Pid | str, component: Component, *, defer_free: bool = False,
                                        preloaded: PreloadedCode | None = None) -> CodeChange:
        """:meth:`prepare_code_change`; for a threaded guest ``snapshot``, the new instance
        and ``upgrade`` run in a worker thread: the node keeps serving meanwhile, the
        guest's host calls work, and a kill of the process interrupts them (the change
        fails with cause ``killed``). An inline guest's change runs as with the sync one.

        Raises:
            UpgradeFailed: naming the process and the cause.
        """
        return await prepare_async(self._require_process(pid), component, defer_free=defer_free,
                                   preloaded=preloaded)

    def _require_process(self, pid: Pid | str) -> Process:
        proc = self._resolve(pid)
        if proc is None:
            raise UpgradeFailed(str(pid), "noproc", "no such process")
        return proc
