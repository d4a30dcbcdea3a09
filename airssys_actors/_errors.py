"""The errors a user of airssys-actors can see, as one small flat hierarchy.

Each is named for what the caller sees. Exit reasons are not errors: they are values
(:class:`airssys_actors.ExitReason`); an error carries one when a process's exit is
the cause.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._reasons import ExitReason


class ActorError(Exception):
    """Base class of every error raised by airssys-actors."""


class InvalidComponent(ActorError):
    """The bytes are not a usable WebAssembly component (corrupt, WAT that does not parse,
    a core module where a component is expected). Contrast :class:`ComponentWorldMismatch`,
    a valid component that implements something else."""


class ComponentWorldMismatch(InvalidComponent):
    """A valid component that does not implement ``airssys:actor/process``: an export is
    missing or has the wrong type, or it imports something the host does not provide.
    ``problems`` lists every mismatch by name."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("component does not implement airssys:actor/process: " + "; ".join(problems))


class NoSuchProcess(ActorError):
    """No live process has that pid or registered name (it never existed or has exited)."""

    def __init__(self, address: object) -> None:
        self.address = address
        super().__init__(f"no such process: {address}")


class NoConnection(NoSuchProcess):
    """The address is on another node this node has no connection to (never heard of,
    down, or this node's own link to the cluster is down). A :class:`NoSuchProcess`,
    so code that handles a dead target handles an unreachable one too."""

    def __init__(self, address: object, node: str) -> None:
        super().__init__(address)
        self.node = node
        self.args = (f"no connection to node {node} (sending to {address})",)

    def __str__(self) -> str:
        return self.args[0]


class NameTaken(ActorError):
    """The name is already registered to another live process."""


class CallTimeout(ActorError):
    """A ``call`` got no reply within its timeout. The request may still be handled later;
    its late reply is recorded as a dead letter."""


class CallFailed(ActorError):
    """The process handling a ``call`` exited before replying. ``reason`` says why.
    Contrast :class:`CallTimeout`, where the process may still be alive."""

    def __init__(self, address: object, reason: ExitReason) -> None:
        super().__init__(address, reason)
        self.address = address
        self.reason = reason

    def __str__(self) -> str:
        # Made only when shown: every crash of a called process fails its caller's call.
        return f"{self.address} exited before replying: {self.reason}"


class MailboxFull(ActorError):
    """The target's mailbox is at its bound; raised by the ``_nowait`` forms only (the
    awaiting forms wait for room). Contrast :class:`MailboxClosed`."""


class MailboxClosed(ActorError):
    """The mailbox belongs to a process that has exited and will take no more messages."""


class UnencodableMessage(ActorError, TypeError):
    """The value cannot be encoded as msgpack (only nil, bool, int, float, str, bytes,
    lists/tuples and maps of those cross a process boundary)."""


class MessageTooLarge(ActorError, ValueError):
    """The encoded message is larger than the limit; it was refused, never truncated."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"message of {size} bytes exceeds the limit of {limit} bytes")


class SpawnFailed(ActorError):
    """The process could not be started: its ``init`` failed or trapped. ``reason`` says how."""

    def __init__(self, reason: ExitReason) -> None:
        self.reason = reason
        super().__init__(f"process failed to start: {reason}")


class UpgradeFailed(ActorError):
    """A code change did not happen; the process named by ``process`` still runs its old
    version with its state untouched (unless ``cause`` says the old version itself
    crashed). ``cause`` is a short tag (``error``, ``trap``, ``out_of_fuel``,
    ``deadline``, ``noproc``, ``not_wasm``, ``probe_failed``...), ``detail`` the text.
    A supervised change also carries its ``report``."""

    def __init__(self, process: object, cause: str, detail: str, report: object = None) -> None:
        self.process = process
        self.cause = cause
        self.detail = detail
        self.report = report
        super().__init__(f"upgrade of {process} failed ({cause}): {detail}")


class NodeClosed(ActorError):
    """The node is shutting down or has stopped; it starts nothing new."""
