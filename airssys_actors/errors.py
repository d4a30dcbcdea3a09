"""Typed errors raised by airssys-actors (see :mod:`airssys_actors._errors`)."""

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
    NodeClosed as NodeClosed,
    NoSuchProcess as NoSuchProcess,
    SpawnFailed as SpawnFailed,
    UnencodableMessage as UnencodableMessage,
    UpgradeFailed as UpgradeFailed,
)

__all__ = [
    "ActorError",
    "CallFailed",
    "CallTimeout",
    "ComponentWorldMismatch",
    "InvalidComponent",
    "MailboxClosed",
    "MailboxFull",
    "MessageTooLarge",
    "NameTaken",
    "NoSuchProcess",
    "NodeClosed",
    "SpawnFailed",
    "UnencodableMessage",
    "UpgradeFailed",
]
