"""Hostile WAT guests built from one template (the layout of examples/components/echo.wat):
each part can loop forever or call the host, so that a test can aim at one point of a
guest's life (instantiation, init, handle, snapshot, upgrade)."""

from __future__ import annotations

LOOP = "(loop $forever (br $forever))"
#: send(to="probe", payload=the export's argument bytes): a host call from that export.
SEND_ARGS = "(call $send (i32.const 2048) (i32.const 5) (local.get 0) (local.get 1) (i32.const 16))"
OK = ""


def guest(*, start: str = OK, init: str = OK, handle: str = OK, snapshot: str = OK, upgrade: str = OK,
          extra_memories: str = "", extra_tables: str = "", handle_locals: str = "") -> str:
    """A component in the echo layout: ``handle`` answers a call with its payload after
    running ``handle``; ``init``'s and ``upgrade``'s bodies run before they return ok
    (``upgrade`` sees the state as locals 2 and 3, moved to 0 and 1 first so that
    SEND_ARGS sends it); ``start`` runs while the instance is created."""
    start_func = f"(func $start {start}) (start $start)" if start else ""
    return f"""
(component
  (type $types-t (instance
    (type $kind (variant (case "cast") (case "call" u64) (case "reply" u64) (case "failed" u64)
                         (case "down" u64) (case "exit") (case "timer" u64)))
    (export "kind" (type $kind-e (eq $kind)))
    (type $string string)
    (export "address" (type $address-e (eq $string)))
    (type $envelope (record (field "kind" $kind-e) (field "sender" (option $address-e))
                            (field "payload" (list u8))))
    (export "envelope" (type (eq $envelope)))
    (type $level (enum "trace" "debug" "info" "warn" "error"))
    (export "level" (type (eq $level)))))
  (import "airssys:actor/types@0.1.0" (instance $types (type $types-t)))
  (alias export $types "address" (type $address))
  (alias export $types "level" (type $level))
  (alias export $types "envelope" (type $envelope))
  (import "airssys:actor/host@0.1.0" (instance $host
    (alias outer 1 $address (type $a))
    (export "address" (type $addr (eq $a)))
    (export "send" (func (param "to" $addr) (param "payload" (list u8)) (result (result (error string)))))))
  (core module $Libc
    (memory (export "memory") 2)
    (global $top (mut i32) (i32.const 65536))
    (func (export "realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
      (local $p i32)
      (local.set $p (i32.and (i32.add (global.get $top) (i32.sub (local.get $align) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get $align))))
      (global.set $top (i32.add (local.get $p) (local.get $size)))
      (if (i32.gt_u (global.get $top) (i32.mul (memory.size) (i32.const 65536)))
        (then (if (i32.eq (memory.grow (i32.add (i32.shr_u (i32.sub (global.get $top)
                                                                   (i32.mul (memory.size) (i32.const 65536)))
                                                            (i32.const 16)) (i32.const 1)))
                          (i32.const -1))
                (then unreachable))))
      (local.get $p))
    (func (export "reset") (global.set $top (i32.const 65536)))
    {start_func})
  (core instance $libc (instantiate $Libc))
  (alias core export $libc "memory" (core memory $memory))
  (alias core export $libc "realloc" (core func $realloc))
  (core func $send (canon lower (func $host "send") (memory $memory) (realloc $realloc)))
  (core module $Guest
    (import "libc" "memory" (memory 1))
    (import "libc" "reset" (func $reset))
    (import "host" "send" (func $send (param i32 i32 i32 i32 i32)))
    {extra_memories}
    {extra_tables}
    (data (i32.const 2048) "probe")
    (func (export "init") (param i32 i32) (result i32)
      {init}
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.const 0))
    (func (export "handle") (param $kind i32) (param $ref i64) (param $has_sender i32)
          (param $sender i32) (param $sender_len i32) (param $payload i32) (param $len i32) (result i32)
      {handle_locals}
      {handle}
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.store8 (i32.const 4) (i32.const 0))
      (if (i32.eq (local.get $kind) (i32.const 1))
        (then
          (i32.store8 (i32.const 4) (i32.const 1))
          (i32.store (i32.const 8) (local.get $payload))
          (i32.store (i32.const 12) (local.get $len))))
      (i32.const 0))
    (func (export "snapshot") (result i32)
      {snapshot}
      (i32.store (i32.const 0) (i32.const 0))
      (i32.store (i32.const 4) (i32.const 0))
      (i32.const 0))
    (func (export "upgrade") (param i32 i32 i32 i32) (result i32)
      (local.set 0 (local.get 2)) (local.set 1 (local.get 3))
      {upgrade}
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.const 0))
    (func (export "post") (param i32) (call $reset)))
  (core instance $guest (instantiate $Guest
    (with "libc" (instance $libc))
    (with "host" (instance (export "send" (func $send))))))
  (func (export "init") (param "args" (list u8)) (result (result (error string)))
    (canon lift (core func $guest "init") (memory $memory) (realloc $realloc) (post-return (core func $guest "post"))))
  (func (export "handle") (param "msg" $envelope) (result (result (option (list u8)) (error string)))
    (canon lift (core func $guest "handle") (memory $memory) (realloc $realloc) (post-return (core func $guest "post"))))
  (func (export "snapshot") (result (list u8))
    (canon lift (core func $guest "snapshot") (memory $memory) (post-return (core func $guest "post"))))
  (func (export "upgrade") (param "from-version" string) (param "state" (list u8)) (result (result (error string)))
    (canon lift (core func $guest "upgrade") (memory $memory) (realloc $realloc) (post-return (core func $guest "post")))))
"""
