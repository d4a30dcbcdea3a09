;; bad_types: echo (see examples/components/echo.wat), except that its import of
;; airssys:actor/types@0.1.0 declares the types differently from wit/actor.wit: `level` is
;; enum { trace, debug, panic } and there is an extra type `secret` (u64). Neither is
;; used by an export, so only a check of the types interface itself catches them:
;; loading it must be refused, naming airssys:actor/types@0.1.0#level and #secret.
;;
;; The layout below is the one every WAT guest in this folder uses (docs/guests-wat.md).
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
    (type $level (enum "trace" "debug" "panic"))
    (export "level" (type (eq $level)))
    (type $secret u64)
    (export "secret" (type (eq $secret)))))
  (import "airssys:actor/types@0.1.0" (instance $types (type $types-t)))
  (alias export $types "address" (type $address))
  (alias export $types "level" (type $level))
  (alias export $types "envelope" (type $envelope))
  (import "airssys:actor/host@0.1.0" (instance $host
    (alias outer 1 $address (type $a))
    (export "address" (type $addr (eq $a)))
    (export "send" (func (param "to" $addr) (param "payload" (list u8)) (result (result (error string)))))))

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

  (core func $send (canon lower (func $host "send") (memory $memory) (realloc $realloc)))

  (core module $Echo
    (import "libc" "memory" (memory 1))
    (import "libc" "reset" (func $reset))
    (import "host" "send" (func $send (param i32 i32 i32 i32 i32)))
    ;; init(args) -> result<_, string>
    (func (export "init") (param i32 i32) (result i32)
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.const 0))
    ;; handle(kind, kind-value, sender?, sender-ptr, sender-len, payload-ptr, payload-len)
    ;;   -> result<option<list<u8>>, string>, written at offset 0
    (func (export "handle") (param $kind i32) (param $ref i64) (param $has_sender i32)
          (param $sender i32) (param $sender_len i32) (param $payload i32) (param $len i32) (result i32)
      (i32.store8 (i32.const 0) (i32.const 0))            ;; ok
      (i32.store8 (i32.const 4) (i32.const 0))            ;; none
      (if (i32.eq (local.get $kind) (i32.const 1))        ;; call: reply with the payload
        (then
          (i32.store8 (i32.const 4) (i32.const 1))
          (i32.store (i32.const 8) (local.get $payload))
          (i32.store (i32.const 12) (local.get $len))))
      (if (i32.and (i32.eqz (local.get $kind)) (local.get $has_sender))   ;; cast from someone
        (then (call $send (local.get $sender) (local.get $sender_len)
                          (local.get $payload) (local.get $len) (i32.const 16))))
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
  (core instance $echo (instantiate $Echo
    (with "libc" (instance $libc))
    (with "host" (instance (export "send" (func $send))))))

  (func (export "init") (param "args" (list u8)) (result (result (error string)))
    (canon lift (core func $echo "init") (memory $memory) (realloc $realloc) (post-return (core func $echo "post"))))
  (func (export "handle") (param "msg" $envelope) (result (result (option (list u8)) (error string)))
    (canon lift (core func $echo "handle") (memory $memory) (realloc $realloc) (post-return (core func $echo "post"))))
  (func (export "snapshot") (result (list u8))
    (canon lift (core func $echo "snapshot") (memory $memory) (post-return (core func $echo "post"))))
  (func (export "upgrade") (param "from-version" string) (param "state" (list u8)) (result (result (error string)))
    (canon lift (core func $echo "upgrade") (memory $memory) (realloc $realloc) (post-return (core func $echo "post")))))
