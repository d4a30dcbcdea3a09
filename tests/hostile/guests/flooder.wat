;; flooder: sends the host oversized text and floods of signals, for tests/hostile/.
;;
;; Commands are raw bytes (not msgpack), sent with call_bytes or as a raw cast:
;;   byte 0      the command (an ASCII letter)
;;   bytes 1..4  n, a little-endian u32
;;   bytes 5..   a target address (for m, k, d)
;;
;;   init(args)  args the msgpack bin8 of "e" + n (what spawn(args=command) sends): err
;;               with a text of n bytes "x"; anything else: ok
;;   handle      a call or a cast carrying a command:
;;     "e" n     return err with a text of n bytes "x"
;;     "s" n     host stop(reason) with a reason of n bytes "x"; reply nil
;;     "l" n     host log(info, message) with a message of n bytes "x"; reply nil
;;     "m" n t   host monitor(t) n times
;;     "k" n t   host link(t) n times
;;     "d" n t   host send(t, 1 MiB of zero bytes) n times
;;     "q" n t   host request(t, nil, 60000 ms) n times
;;     "f" n t b forward: host send(t, b) where t is the next n bytes and b all the rest
;;               (raw bytes, not msgpack: a raw cast); replies 1 if it returned ok, else 0
;;     "r"       unbounded recursion: a stack-overflow trap
;;     anything else (shorter than 5 bytes, or another letter): reply nil
;;               m, k, d, q and f reply how many host calls returned ok, as a msgpack uint32
;;               (0xce and four big-endian bytes). Replies go to calls only.
;;               Envelopes of other kinds than cast and call are ignored.
;;   snapshot    empty; upgrade always ok
;;
;; Memory: 0..16 the export result area, 16..32 the return area of host calls, 32..37
;; the reply, 40 a nil reply; guest text and 1 MiB payloads on the bump heap (65536..).
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
    (alias outer 1 $level (type $l))
    (export "level" (type $lvl (eq $l)))
    (export "send" (func (param "to" $addr) (param "payload" (list u8)) (result (result (error string)))))
    (export "request" (func (param "to" $addr) (param "payload" (list u8)) (param "timeout-ms" u32)
                            (result (result u64 (error string)))))
    (export "stop" (func (param "reason" string)))
    (export "link" (func (param "target" $addr) (result (result (error string)))))
    (export "monitor" (func (param "target" $addr) (result (result u64 (error string)))))
    (export "log" (func (param "level" $lvl) (param "message" string)))))

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
  (core func $request (canon lower (func $host "request") (memory $memory) (realloc $realloc)))
  (core func $stop (canon lower (func $host "stop") (memory $memory)))
  (core func $link (canon lower (func $host "link") (memory $memory) (realloc $realloc)))
  (core func $monitor (canon lower (func $host "monitor") (memory $memory) (realloc $realloc)))
  (core func $log (canon lower (func $host "log") (memory $memory)))

  (core module $Flooder
    (import "libc" "memory" (memory 1))
    (import "libc" "reset" (func $reset))
    (import "libc" "realloc" (func $realloc (param i32 i32 i32 i32) (result i32)))
    (import "host" "send" (func $send (param i32 i32 i32 i32 i32)))
    ;; result<u64, string> at r: byte r, u64 at r+8 or str at r+8 / r+12
    (import "host" "request" (func $request (param i32 i32 i32 i32 i32 i32)))
    (import "host" "stop" (func $stop (param i32 i32)))
    (import "host" "link" (func $link (param i32 i32 i32)))
    (import "host" "monitor" (func $monitor (param i32 i32 i32)))
    (import "host" "log" (func $log (param i32 i32 i32)))

    ;; n bytes "x" on the bump heap; returns where
    (func $text (param $n i32) (result i32)
      (local $p i32)
      (local.set $p (call $realloc (i32.const 0) (i32.const 0) (i32.const 1) (local.get $n)))
      (memory.fill (local.get $p) (i32.const 0x78) (local.get $n))
      (local.get $p))

    ;; n, the u32 at payload+1
    (func $count (param $payload i32) (result i32)
      (i32.load align=1 (i32.add (local.get $payload) (i32.const 1))))

    ;; err(text) in the result area
    (func $err (param $p i32) (param $n i32) (result i32)
      (i32.store8 (i32.const 0) (i32.const 1))
      (i32.store (i32.const 4) (local.get $p))
      (i32.store (i32.const 8) (local.get $n))
      (i32.const 0))

    ;; ok(some(bytes)) for a call, ok(none) for anything else
    (func $answer (param $kind i32) (param $p i32) (param $n i32) (result i32)
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.store8 (i32.const 4) (i32.const 0))
      (if (i32.eq (local.get $kind) (i32.const 1))
        (then
          (i32.store8 (i32.const 4) (i32.const 1))
          (i32.store (i32.const 8) (local.get $p))
          (i32.store (i32.const 12) (local.get $n))))
      (i32.const 0))

    ;; reply a msgpack uint32
    (func $answer_u32 (param $kind i32) (param $v i32) (result i32)
      (i32.store8 (i32.const 32) (i32.const 0xce))
      (i32.store8 (i32.const 33) (i32.shr_u (local.get $v) (i32.const 24)))
      (i32.store8 (i32.const 34) (i32.shr_u (local.get $v) (i32.const 16)))
      (i32.store8 (i32.const 35) (i32.shr_u (local.get $v) (i32.const 8)))
      (i32.store8 (i32.const 36) (local.get $v))
      (call $answer (local.get $kind) (i32.const 32) (i32.const 5)))

    (func $recurse (param $d i32) (result i32)
      (i32.add (call $recurse (i32.add (local.get $d) (i32.const 1))) (i32.const 1)))

    (func (export "init") (param $args i32) (param $len i32) (result i32)
      (local $n i32)
      (i32.store8 (i32.const 0) (i32.const 0))
      (if (i32.and (i32.ge_u (local.get $len) (i32.const 7))
                   (i32.and (i32.eq (i32.load8_u (local.get $args)) (i32.const 0xc4))      ;; bin8
                            (i32.eq (i32.load8_u offset=2 (local.get $args)) (i32.const 0x65))))  ;; "e"
        (then
          (local.set $n (call $count (i32.add (local.get $args) (i32.const 2))))
          (return (call $err (call $text (local.get $n)) (local.get $n)))))
      (i32.const 0))

    ;; handle(kind, kind-value, sender?, sender-ptr, sender-len, payload-ptr, payload-len)
    (func (export "handle") (param $kind i32) (param $ref i64) (param $has_sender i32)
          (param $sender i32) (param $sender_len i32) (param $payload i32) (param $len i32) (result i32)
      (local $op i32) (local $n i32) (local $t i32) (local $tl i32) (local $i i32) (local $ok i32)
      (local $big i32)
      (i32.store8 (i32.const 40) (i32.const 0xc0))
      (if (i32.gt_u (local.get $kind) (i32.const 1))
        (then (return (call $answer (i32.const 0) (i32.const 0) (i32.const 0)))))
      (if (i32.eq (local.get $len) (i32.const 1))
        (then
          (if (i32.eq (i32.load8_u (local.get $payload)) (i32.const 0x72))           ;; "r"
            (then (drop (call $recurse (i32.const 0))) unreachable))))
      (if (i32.lt_u (local.get $len) (i32.const 5))
        (then (return (call $answer (local.get $kind) (i32.const 40) (i32.const 1)))))
      (local.set $op (i32.load8_u (local.get $payload)))
      (local.set $n (call $count (local.get $payload)))
      (local.set $t (i32.add (local.get $payload) (i32.const 5)))
      (local.set $tl (i32.sub (local.get $len) (i32.const 5)))
      (if (i32.eq (local.get $op) (i32.const 0x65))                                  ;; "e"
        (then (return (call $err (call $text (local.get $n)) (local.get $n)))))
      (if (i32.eq (local.get $op) (i32.const 0x73))                                  ;; "s"
        (then
          (call $stop (call $text (local.get $n)) (local.get $n))
          (return (call $answer (local.get $kind) (i32.const 40) (i32.const 1)))))
      (if (i32.eq (local.get $op) (i32.const 0x6c))                                  ;; "l"
        (then
          (call $log (i32.const 2) (call $text (local.get $n)) (local.get $n))
          (return (call $answer (local.get $kind) (i32.const 40) (i32.const 1)))))
      (if (i32.eq (local.get $op) (i32.const 0x6d))                                  ;; "m"
        (then
          (block $done
            (loop $more
              (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
              (call $monitor (local.get $t) (local.get $tl) (i32.const 16))
              (if (i32.eqz (i32.load8_u (i32.const 16)))
                (then (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br $more)))
          (return (call $answer_u32 (local.get $kind) (local.get $ok)))))
      (if (i32.eq (local.get $op) (i32.const 0x6b))                                  ;; "k"
        (then
          (block $done
            (loop $more
              (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
              (call $link (local.get $t) (local.get $tl) (i32.const 16))
              (if (i32.eqz (i32.load8_u (i32.const 16)))
                (then (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br $more)))
          (return (call $answer_u32 (local.get $kind) (local.get $ok)))))
      (if (i32.eq (local.get $op) (i32.const 0x64))                                  ;; "d"
        (then
          ;; 1 MiB of zeros on the heap (fresh memory is zeroed)
          (local.set $big (call $realloc (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 1048576)))
          (block $done
            (loop $more
              (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
              (call $send (local.get $t) (local.get $tl) (local.get $big) (i32.const 1048576) (i32.const 16))
              (if (i32.eqz (i32.load8_u (i32.const 16)))
                (then (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br $more)))
          (return (call $answer_u32 (local.get $kind) (local.get $ok)))))
      (if (i32.eq (local.get $op) (i32.const 0x71))                                  ;; "q"
        (then
          (block $done
            (loop $more
              (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
              (call $request (local.get $t) (local.get $tl) (i32.const 40) (i32.const 1)
                             (i32.const 60000) (i32.const 16))
              (if (i32.eqz (i32.load8_u (i32.const 16)))
                (then (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br $more)))
          (return (call $answer_u32 (local.get $kind) (local.get $ok)))))
      (if (i32.eq (local.get $op) (i32.const 0x66))                                  ;; "f"
        (then
          (if (i32.le_u (local.get $n) (local.get $tl))
            (then
              (call $send (local.get $t) (local.get $n) (i32.add (local.get $t) (local.get $n))
                          (i32.sub (local.get $tl) (local.get $n)) (i32.const 16))
              (return (call $answer_u32 (local.get $kind) (i32.eqz (i32.load8_u (i32.const 16)))))))))
      (call $answer (local.get $kind) (i32.const 40) (i32.const 1)))

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
  (core instance $flooder (instantiate $Flooder
    (with "libc" (instance $libc))
    (with "host" (instance
      (export "send" (func $send))
      (export "request" (func $request))
      (export "stop" (func $stop))
      (export "link" (func $link))
      (export "monitor" (func $monitor))
      (export "log" (func $log))))))

  (func (export "init") (param "args" (list u8)) (result (result (error string)))
    (canon lift (core func $flooder "init") (memory $memory) (realloc $realloc) (post-return (core func $flooder "post"))))
  (func (export "handle") (param "msg" $envelope) (result (result (option (list u8)) (error string)))
    (canon lift (core func $flooder "handle") (memory $memory) (realloc $realloc) (post-return (core func $flooder "post"))))
  (func (export "snapshot") (result (list u8))
    (canon lift (core func $flooder "snapshot") (memory $memory) (post-return (core func $flooder "post"))))
  (func (export "upgrade") (param "from-version" string) (param "state" (list u8)) (result (result (error string)))
    (canon lift (core func $flooder "upgrade") (memory $memory) (realloc $realloc) (post-return (core func $flooder "post")))))
