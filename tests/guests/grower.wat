;; grower: memory that grows on request, for the memory-tracking tests
;; (tests/host/test_memory_tracking.py). Built like examples/components/echo.wat (no host
;; imports), plus a second core memory, 64-bit and initially empty, that only `handle` grows:
;;
;;   init / snapshot / upgrade   as echo: ok, empty, ok
;;   handle          a call grows the 64-bit memory by one 64 KiB page per payload byte
;;                   (memory.grow) and replies with its payload; if memory.grow returns -1
;;                   it traps (unreachable). Envelopes of other kinds are ignored.
;;
;; 64-bit, so that it can be asked to grow past 4 GiB: with memory tracking on, that is
;; past its reservation, and memory.grow must fail cleanly.
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

  ;; Memory and a bump allocator; `reset` frees everything above the heap base.
  (core module $Libc
    (memory (export "memory") 2)
    (global $top (mut i32) (i32.const 65536))
    (func (export "realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
      (local $p i32)
      (local.set $p (i32.and (i32.add (global.get $top) (i32.sub (local.get $align) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get $align))))
      (global.set $top (i32.add (local.get $p) (local.get $size)))
      (if (i32.gt_u (global.get $top) (i32.mul (memory.size) (i32.const 65536)))
        (then (if (i32.eq (memory.grow (i32.add (i32.shr_u (i32.sub (global.get $top) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1))) (i32.const -1))
                (then unreachable))))
      (local.get $p))
    (func (export "reset") (global.set $top (i32.const 65536))))
  (core instance $libc (instantiate $Libc))
  (alias core export $libc "memory" (core memory $memory))
  (alias core export $libc "realloc" (core func $realloc))

  (core module $Grower
    (import "libc" "memory" (memory 1))
    (import "libc" "reset" (func $reset))
    ;; a second, 64-bit memory: the only one handle grows
    (memory $big i64 0)
    ;; init(args) -> result<_, string>
    (func (export "init") (param i32 i32) (result i32)
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.const 0))
    ;; handle(kind, kind-value, sender?, sender-ptr, sender-len, payload-ptr, payload-len)
    ;;   -> result<option<list<u8>>, string>, written at offset 0
    ;; A call grows $big by as many 64 KiB pages as the payload has bytes, then replies
    ;; with the payload; if memory.grow returns -1 it traps (unreachable) instead.
    (func (export "handle") (param $kind i32) (param $ref i64) (param $has_sender i32)
          (param $sender i32) (param $sender_len i32) (param $payload i32) (param $len i32) (result i32)
      (i32.store8 (i32.const 0) (i32.const 0))            ;; ok
      (i32.store8 (i32.const 4) (i32.const 0))            ;; none
      (if (i32.eq (local.get $kind) (i32.const 1))
        (then
          (if (i64.eq (memory.grow $big (i64.extend_i32_u (local.get $len))) (i64.const -1))
            (then unreachable))
          (i32.store8 (i32.const 4) (i32.const 1))
          (i32.store (i32.const 8) (local.get $payload))
          (i32.store (i32.const 12) (local.get $len))))
      (i32.const 0))
    ;; snapshot() -> list<u8>: empty
    (func (export "snapshot") (result i32)
      (i32.store (i32.const 0) (i32.const 0))
      (i32.store (i32.const 4) (i32.const 0))
      (i32.const 0))
    ;; upgrade(from-version, state) -> result<_, string>
    (func (export "upgrade") (param i32 i32 i32 i32) (result i32)
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.const 0))
    (func (export "post") (param i32) (call $reset)))
  (core instance $grower (instantiate $Grower
    (with "libc" (instance $libc))))

  (func (export "init") (param "args" (list u8)) (result (result (error string)))
    (canon lift (core func $grower "init") (memory $memory) (realloc $realloc) (post-return (core func $grower "post"))))
  (func (export "handle") (param "msg" $envelope) (result (result (option (list u8)) (error string)))
    (canon lift (core func $grower "handle") (memory $memory) (realloc $realloc) (post-return (core func $grower "post"))))
  (func (export "snapshot") (result (list u8))
    (canon lift (core func $grower "snapshot") (memory $memory) (post-return (core func $grower "post"))))
  (func (export "upgrade") (param "from-version" string) (param "state" (list u8)) (result (result (error string)))
    (canon lift (core func $grower "upgrade") (memory $memory) (realloc $realloc) (post-return (core func $grower "post")))))
