"""Isolation: a WASM process must not be able to hurt the node, other processes or the host.

Every test here runs real guests on a real node and checks three things: the misbehaving
process ends with a clear exit reason (or the caller gets a typed error), the node keeps
serving other processes (an echo guest answers afterwards), and nothing is lost (each
message is delivered, answered with an error, or recorded as a dead letter).

Already covered elsewhere, and not repeated here:

* tests/host/test_component_loading.py: corrupt bytes, invalid WAT, a core module, missing
  exports, an unknown host import (``bad_import.wat``), a wrong export type, a bad
  component refused before any process starts.
* tests/host/test_wasm_processes.py: the basic exit reason of an infinite loop (fuel and
  deadline), a stack overflow, unbounded allocation, a reply over ``max_message``, a 4 MiB
  reply (``message_too_large``), an oversized message to a guest, self-spam bounded by
  the mailbox, spawn denied without the capability, a guest's send seen with its pid.

The guests are the examples (examples/components/*.wat, see each file's header) plus
``build/guests/fsprobe.wasm`` (examples/python_guest/fsprobe, built by
``scripts/build_python_guest.py``). docs/security.md describes the guarantees tested.
"""
