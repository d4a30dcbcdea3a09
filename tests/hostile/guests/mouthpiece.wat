;; mouthpiece: says exactly what its caller tells it to, for tests of what the host and
;; the CLI do with guest-chosen bytes and text.
;;
;;   init            accepts anything
;;   handle          a call whose payload is a msgpack str (fixstr, str8 or str16) "<c><rest>":
;;                     "r<hex>"   reply the bytes <hex> decodes to, verbatim (any msgpack,
;;                                valid or not: ext types, odd map keys, NaN...)
;;                     "l<text>"  host log(warn, <text>), reply nil
;;                     "s<text>"  host stop(<text>): exits with reason <text>, no reply
;;                   anything else: reply nil. Casts are ignored.
;;   snapshot        empty; upgrade always ok
;; Same layout as examples/components/echo.wat (docs/guests-wat.md).
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
    (alias outer 1 $level (type $l))
    (export "level" (type $lvl (eq $l)))
    (export "stop" (func (param "reason" string)))
    (export "log" (func (param "level" $lvl) (param "message" string)))))

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

  (core func $stop (canon lower (func $host "stop") (memory $memory)))
  (core func $log (canon lower (func $host "log") (memory $memory)))

  (core module $Mouthpiece
    (import "libc" "memory" (memory 1))
    (import "libc" "reset" (func $reset))
    (import "libc" "realloc" (func $realloc (param i32 i32 i32 i32) (result i32)))
    (import "host" "stop" (func $stop (param i32 i32)))
    (import "host" "log" (func $log (param i32 i32 i32)))
    (data (i32.const 1024) "\c0")
    (func $nibble (param $c i32) (result i32)
      (if (result i32) (i32.le_u (local.get $c) (i32.const 57))
        (then (i32.sub (local.get $c) (i32.const 48)))
        (else (i32.sub (i32.or (local.get $c) (i32.const 32)) (i32.const 87)))))
    (func (export "init") (param i32 i32) (result i32)
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.const 0))
    (func (export "handle") (param $kind i32) (param $ref i64) (param $has_sender i32)
          (param $sender i32) (param $sender_len i32) (param $payload i32) (param $len i32) (result i32)
      (local $b i32) (local $text i32) (local $n i32) (local $out i32) (local $i i32)
      (i32.store8 (i32.const 0) (i32.const 0))            ;; ok
      (i32.store8 (i32.const 4) (i32.const 0))            ;; no reply unless a call
      (if (i32.ne (local.get $kind) (i32.const 1)) (then (return (i32.const 0))))
      ;; reply nil unless a command says otherwise
      (i32.store8 (i32.const 4) (i32.const 1))
      (i32.store (i32.const 8) (i32.const 1024))
      (i32.store (i32.const 12) (i32.const 1))
      (if (i32.eqz (local.get $len)) (then (return (i32.const 0))))
      (local.set $b (i32.load8_u (local.get $payload)))
      (local.set $n (i32.const -1))
      (if (i32.eq (i32.and (local.get $b) (i32.const 0xe0)) (i32.const 0xa0))
        (then (local.set $n (i32.and (local.get $b) (i32.const 0x1f)))
              (local.set $text (i32.add (local.get $payload) (i32.const 1)))))
      (if (i32.and (i32.eq (local.get $b) (i32.const 0xd9)) (i32.ge_u (local.get $len) (i32.const 2)))
        (then (local.set $n (i32.load8_u (i32.add (local.get $payload) (i32.const 1))))
              (local.set $text (i32.add (local.get $payload) (i32.const 2)))))
      (if (i32.and (i32.eq (local.get $b) (i32.const 0xda)) (i32.ge_u (local.get $len) (i32.const 3)))
        (then (local.set $n (i32.or (i32.shl (i32.load8_u (i32.add (local.get $payload) (i32.const 1))) (i32.const 8))
                                    (i32.load8_u (i32.add (local.get $payload) (i32.const 2)))))
              (local.set $text (i32.add (local.get $payload) (i32.const 3)))))
      ;; not a str, an empty one, or one longer than the payload: reply nil
      (if (i32.or (i32.lt_s (local.get $n) (i32.const 1))
                  (i32.gt_u (i32.add (i32.sub (local.get $text) (local.get $payload)) (local.get $n)) (local.get $len)))
        (then (return (i32.const 0))))
      (local.set $b (i32.load8_u (local.get $text)))
      (local.set $text (i32.add (local.get $text) (i32.const 1)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (if (i32.eq (local.get $b) (i32.const 114))           ;; "r": reply the decoded hex
        (then
          (local.set $out (call $realloc (i32.const 0) (i32.const 0) (i32.const 1) (i32.shr_u (local.get $n) (i32.const 1))))
          (block $done (loop $next
            (br_if $done (i32.ge_u (i32.add (i32.shl (local.get $i) (i32.const 1)) (i32.const 1)) (local.get $n)))
            (i32.store8 (i32.add (local.get $out) (local.get $i))
              (i32.or (i32.shl (call $nibble (i32.load8_u (i32.add (local.get $text) (i32.shl (local.get $i) (i32.const 1)))))
                               (i32.const 4))
                      (i32.and (call $nibble (i32.load8_u (i32.add (local.get $text)
                                                                   (i32.add (i32.shl (local.get $i) (i32.const 1)) (i32.const 1)))))
                               (i32.const 15))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $next)))
          (i32.store (i32.const 8) (local.get $out))
          (i32.store (i32.const 12) (i32.shr_u (local.get $n) (i32.const 1)))))
      (if (i32.eq (local.get $b) (i32.const 108))           ;; "l": log it
        (then (call $log (i32.const 3) (local.get $text) (local.get $n))))
      (if (i32.eq (local.get $b) (i32.const 115))           ;; "s": stop with it, no reply
        (then (call $stop (local.get $text) (local.get $n))
              (i32.store8 (i32.const 4) (i32.const 0))))
      (i32.const 0))
    (func (export "snapshot") (result i32)
      (i32.store (i32.const 0) (i32.const 0))
      (i32.store (i32.const 4) (i32.const 0))
      (i32.const 0))
    (func (export "upgrade") (param i32 i32 i32 i32) (result i32)
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.const 0))
    (func (export "post") (param i32) (call $reset)))
  (core instance $mouthpiece (instantiate $Mouthpiece
    (with "libc" (instance $libc))
    (with "host" (instance (export "stop" (func $stop)) (export "log" (func $log))))))

  (func (export "init") (param "args" (list u8)) (result (result (error string)))
    (canon lift (core func $mouthpiece "init") (memory $memory) (realloc $realloc) (post-return (core func $mouthpiece "post"))))
  (func (export "handle") (param "msg" $envelope) (result (result (option (list u8)) (error string)))
    (canon lift (core func $mouthpiece "handle") (memory $memory) (realloc $realloc) (post-return (core func $mouthpiece "post"))))
  (func (export "snapshot") (result (list u8))
    (canon lift (core func $mouthpiece "snapshot") (memory $memory) (post-return (core func $mouthpiece "post"))))
  (func (export "upgrade") (param "from-version" string) (param "state" (list u8)) (result (result (error string)))
    (canon lift (core func $mouthpiece "upgrade") (memory $memory) (realloc $realloc) (post-return (core func $mouthpiece "post")))))
