;; adder: answers a call whose payload is [a, b], two small ints, with a + b.
;;
;;   init(args)   any args; always ok
;;   handle       a call whose payload is a msgpack array of two one-byte ints (fixints,
;;                -32..127) is answered with a + b as a msgpack int; any other call payload
;;                -> err("expected [a, b] with -32 <= a, b <= 127"), which ends the process
;;                with reason ["error", that text]. Casts and other kinds are ignored.
;;   snapshot     empty; upgrade always ok
;;
;; Memory below the heap base (65536):
;;   0..16     result area of every export
;;   16..18    the encoded sum
;;   1024..    the error text
;; Same layout as echo.wat (docs/guests-wat.md); adder calls no host function, so it
;; imports no host interface.
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

  (core module $Adder
    (import "libc" "memory" (memory 1))
    (import "libc" "reset" (func $reset))
    (data (i32.const 1024) "expected [a, b] with -32 <= a, b <= 127")

    ;; 1 if byte b is a one-byte msgpack int: positive fixint 0x00..0x7f or negative
    ;; fixint 0xe0..0xff (its value is then the byte sign-extended: i32.extend8_s)
    (func $is_fixint (param $b i32) (result i32)
      (i32.or (i32.lt_u (local.get $b) (i32.const 0x80))
              (i32.ge_u (local.get $b) (i32.const 0xe0))))

    ;; err("expected ...") in the result area
    (func $bad (result i32)
      (i32.store8 (i32.const 0) (i32.const 1))             ;; err
      (i32.store (i32.const 4) (i32.const 1024))           ;; string pointer
      (i32.store (i32.const 8) (i32.const 39))             ;; string length
      (i32.const 0))

    ;; init(args) -> result<_, string>: ok
    (func (export "init") (param i32 i32) (result i32)
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.const 0))

    ;; handle(kind, kind-value, sender?, sender-ptr, sender-len, payload-ptr, payload-len)
    ;;   -> result<option<list<u8>>, string>, written at offset 0
    (func (export "handle") (param $kind i32) (param $ref i64) (param $has_sender i32)
          (param $sender i32) (param $sender_len i32) (param $payload i32) (param $len i32) (result i32)
      (local $a i32) (local $b i32) (local $sum i32)
      (i32.store8 (i32.const 0) (i32.const 0))            ;; ok
      (i32.store8 (i32.const 4) (i32.const 0))            ;; none
      (if (i32.ne (local.get $kind) (i32.const 1))        ;; not a call: nothing to do
        (then (return (i32.const 0))))
      ;; exactly three bytes: 0x92 (an array of two), then two fixints
      (if (i32.ne (local.get $len) (i32.const 3)) (then (return (call $bad))))
      (if (i32.ne (i32.load8_u (local.get $payload)) (i32.const 0x92)) (then (return (call $bad))))
      (local.set $a (i32.load8_u offset=1 (local.get $payload)))
      (local.set $b (i32.load8_u offset=2 (local.get $payload)))
      (if (i32.eqz (i32.and (call $is_fixint (local.get $a)) (call $is_fixint (local.get $b))))
        (then (return (call $bad))))
      (local.set $sum (i32.add (i32.extend8_s (local.get $a)) (i32.extend8_s (local.get $b))))
      ;; some(the sum as a msgpack int) at 16: the sum is in -64..254
      (i32.store8 (i32.const 4) (i32.const 1))            ;; some
      (i32.store (i32.const 8) (i32.const 16))            ;; list pointer
      (if (i32.and (i32.ge_s (local.get $sum) (i32.const -32)) (i32.le_s (local.get $sum) (i32.const 127)))
        (then                                             ;; a fixint: one byte
          (i32.store8 (i32.const 16) (local.get $sum))
          (i32.store (i32.const 12) (i32.const 1)))
        (else                                             ;; uint8 (0xcc) or int8 (0xd0)
          (i32.store8 (i32.const 16) (select (i32.const 0xcc) (i32.const 0xd0)
                                             (i32.gt_s (local.get $sum) (i32.const 0))))
          (i32.store8 (i32.const 17) (local.get $sum))
          (i32.store (i32.const 12) (i32.const 2))))       ;; list length
      (i32.const 0))

    ;; snapshot() -> list<u8>: empty
    (func (export "snapshot") (result i32)
      (i32.store (i32.const 0) (i32.const 0))
      (i32.store (i32.const 4) (i32.const 0))
      (i32.const 0))
    ;; upgrade(from-version, state) -> result<_, string>: ok
    (func (export "upgrade") (param i32 i32 i32 i32) (result i32)
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.const 0))
    ;; post-return of every export: free what the call allocated
    (func (export "post") (param i32) (call $reset)))
  (core instance $adder (instantiate $Adder
    (with "libc" (instance $libc))))

  (func (export "init") (param "args" (list u8)) (result (result (error string)))
    (canon lift (core func $adder "init") (memory $memory) (realloc $realloc) (post-return (core func $adder "post"))))
  (func (export "handle") (param "msg" $envelope) (result (result (option (list u8)) (error string)))
    (canon lift (core func $adder "handle") (memory $memory) (realloc $realloc) (post-return (core func $adder "post"))))
  (func (export "snapshot") (result (list u8))
    (canon lift (core func $adder "snapshot") (memory $memory) (post-return (core func $adder "post"))))
  (func (export "upgrade") (param "from-version" string) (param "state" (list u8)) (result (result (error string)))
    (canon lift (core func $adder "upgrade") (memory $memory) (realloc $realloc) (post-return (core func $adder "post")))))
