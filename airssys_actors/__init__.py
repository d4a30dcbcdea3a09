"""airssys-actors: an Erlang/OTP-style actor runtime in which every process is a
sandboxed WebAssembly component.

Layering: ``_host/`` is the only code that touches wasmtime; ``_mailbox``, ``_process``,
``_node`` and friends are the runtime; this module is the one list of public names.
The ``supervisors`` package is built on these names only.
"""

from ._actor import NOREPLY as NOREPLY
from ._actor import Actor as Actor
from ._actor import Context as Context
from ._capabilities import Capabilities as Capabilities
from ._capabilities import Preopen as Preopen
from ._capabilities import WasiGrant as WasiGrant
from ._codec import UndecodableMessage as UndecodableMessage
from ._codec import decode as decode
from ._codec import encode as encode
from ._deadletters import DeadLetter as DeadLetter
from ._errors import (
    ActorError as ActorError,
    CallFailed as CallFailed,
    CallTimeout as CallTimeout,
    ComponentWorldMismatch as ComponentWorldMismatch,
    InvalidComponent as InvalidComponent,
    MailboxClosed as MailboxClosed,
    MailboxFull as MailboxFull,
    MessageTooLarge as MessageTooLarge,
    NameTaken as NameTaken,
    NoConnection as NoConnection,
    NodeClosed as NodeClosed,
    NoSuchProcess as NoSuchProcess,
    SpawnFailed as SpawnFailed,
    UnencodableMessage as UnencodableMessage,
    UpgradeFailed as UpgradeFailed,
)
from ._clusterconfig import ClusterConfig as ClusterConfig
from ._codechange import CodeChange as CodeChange
from ._codechange import PreloadedCode as PreloadedCode
from ._events import Event as Event
from ._events import Subscription as Subscription
from ._host._engine import memory_tracked as memory_tracked
from ._host._engine import track_memory as track_memory
from ._limits import Limits as Limits
from ._mailbox import MailboxStatistics as MailboxStatistics
from ._message import Kind as Kind
from ._message import Message as Message
from ._node import Node as Node
from ._introspection import NodeStatistics as NodeStatistics
from ._pid import Pid as Pid
from ._reasons import KILLED as KILLED
from ._reasons import NOPROC as NOPROC
from ._reasons import NORMAL as NORMAL
from ._reasons import SHUTDOWN as SHUTDOWN
from ._reasons import ExitReason as ExitReason
from ._wasm import Component as Component

__all__ = [
    "KILLED",
    "NOPROC",
    "NOREPLY",
    "NORMAL",
    "SHUTDOWN",
    "Actor",
    "ActorError",
    "CallFailed",
    "CallTimeout",
    "Capabilities",
    "ClusterConfig",
    "CodeChange",
    "Component",
    "ComponentWorldMismatch",
    "Context",
    "DeadLetter",
    "Event",
    "ExitReason",
    "InvalidComponent",
    "Kind",
    "Limits",
    "MailboxClosed",
    "MailboxFull",
    "MailboxStatistics",
    "Message",
    "MessageTooLarge",
    "NameTaken",
    "NoConnection",
    "NoSuchProcess",
    "Node",
    "NodeClosed",
    "NodeStatistics",
    "Pid",
    "PreloadedCode",
    "Preopen",
    "SpawnFailed",
    "Subscription",
    "UndecodableMessage",
    "UnencodableMessage",
    "UpgradeFailed",
    "WasiGrant",
    "decode",
    "encode",
    "memory_tracked",
    "track_memory",
]


def _fixup_module_metadata() -> None:
    # Show `airssys_actors.Node` in reprs and tracebacks, not the private module path.
    import types

    for name in __all__:
        obj = globals()[name]
        if isinstance(obj, type) and obj.__module__.startswith("airssys_actors._"):
            obj.__module__ = __name__
        elif isinstance(obj, types.FunctionType) and obj.__module__.startswith("airssys_actors._"):
            obj.__module__ = __name__


_fixup_module_metadata()
del _fixup_module_metadata
