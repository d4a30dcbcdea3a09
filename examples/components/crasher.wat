;; crasher: misbehaves on request, for fault-tolerance tests.
;;
;;   init(args)      args = msgpack str "fail" -> err("init failed"); anything else -> ok
;;   handle          cast or call whose payload is a msgpack str command, or ["spin", n]:
;;                     "ping"      reply "pong"
;;                     "crash"     trap (unreachable)
;;                     "error"     return err("asked to fail")
;;                     "stop"      host stop("normal"), reply "stopping"
;;                     "shutdown"  host stop("shutdown"), reply "stopping"
;;                     "boom"      host stop("boom"), no reply
;;                     "loop"      loop forever (until fuel / epoch interruption)
;;                     "recurse"   unbounded recursion (stack overflow trap)
;;                     "alloc"     memory.grow 1 MiB at a time until it fails, then trap
;;                     "big"       reply a 4 MiB msgpack bin32 of zero bytes
;;                     "spam"      host send(self(), "ping") 100000 times ignoring errors,
;;                                 reply "spammed"
;;                     ["spin", n] busy-loop n iterations (n an int; none when n <= 0) in a
;;                                 plain counted loop (no host call), then reply "spun".
;;                                 Each iteration costs 7 units of fuel.
;;                   Resource abuse through the host (each replies how many host calls
;;                   returned ok, as a msgpack int; errors are counted, never trapped on):
;;                     "timers"    host send-after(self(), "t", 60000 ms) 10000 times
;;                     "spawn-loop" host spawn("echo", nil) 10000 times
;;                     ["spam", target]  host send(target, "x") 100000 times (target a str)
;;                     ["spam", target, n]  the same, n times (n an int; none when n <= 0)
;;                   Replies the host must cope with:
;;                     "deep"      a msgpack value nested 100000 levels deep: 0x91 (a
;;                                 one-element array) 100000 times, then nil (0xc0)
;;                     ["deep", n] the same, n levels (n an int; none when n <= 0)
;;                     "nested-big" the same, 1000000 levels: 1000001 bytes, just under the
;;                                 default 1 MiB message limit
;;                     "liar"      bin32 claiming 0xffffffff bytes, with one byte present
;;                     "unhashable" a map whose key is an array ({[1]: 1}): valid msgpack
;;                                 that Python cannot decode into a dict
;;                   Requests to itself:
;;                     "self-call" host request(self(), "ping", 100 ms); reply the request id
;;                                 as an int, or ["error", reason]. The request arrives as a
;;                                 call from itself once this handler returns, is answered
;;                                 "pong", and that answer comes back as reply(id).
;;                     ["self-call", msg, ms] the same with any msgpack value msg (sent as-is)
;;                                 and a timeout of ms milliseconds
;;                     "last-answer" reply the last reply(id) / failed(id) envelope seen as
;;                                 ["reply", payload] / ["failed", payload] (the payload
;;                                 embedded as-is; one over 8000 bytes is replaced by nil),
;;                                 or nil when none came yet
;;                   anything else (any other str, any other array, or neither) -> reply "pong".
;;                   Replies go only to calls; a cast runs the same command and drops the
;;                   reply. Envelopes of other kinds are ignored, except that reply and
;;                   failed envelopes are remembered for "last-answer".
;;   snapshot        empty; upgrade always ok
;;
;; Memory below the heap base (65536):
;;   0..16     result area of every export
;;   16..32    return area of host calls
;;   48..64    zero bytes the msgpack reader falls back on
;;   1024..    constant strings, 32 bytes apart
;;   32768..40960  the last reply / failed envelope: i32 kind (0: none yet) at 32768,
;;             i32 payload length at 32772, the payload from 32784
;; Same layout as echo.wat (docs/guests-wat.md).
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
  (alias export $types "envelope" (type $envelope))
  (import "airssys:actor/host@0.1.0" (instance $host
    (alias outer 1 $address (type $a))
    (export "address" (type $addr (eq $a)))
    (export "self" (func (result $addr)))
    (export "send" (func (param "to" $addr) (param "payload" (list u8)) (result (result (error string)))))
    (export "stop" (func (param "reason" string)))
    (export "request" (func (param "to" $addr) (param "payload" (list u8)) (param "timeout-ms" u32)
                            (result (result u64 (error string)))))
    (export "send-after" (func (param "to" $addr) (param "payload" (list u8)) (param "delay-ms" u32)
                               (result (result u64 (error string)))))
    (export "spawn" (func (param "component" string) (param "args" (list u8)) (result (result $addr (error string)))))))

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

  (core func $self (canon lower (func $host "self") (memory $memory) (realloc $realloc)))
  (core func $send (canon lower (func $host "send") (memory $memory) (realloc $realloc)))
  (core func $stop (canon lower (func $host "stop") (memory $memory)))
  (core func $request (canon lower (func $host "request") (memory $memory) (realloc $realloc)))
  (core func $send-after (canon lower (func $host "send-after") (memory $memory) (realloc $realloc)))
  (core func $spawn (canon lower (func $host "spawn") (memory $memory) (realloc $realloc)))

  (core module $Crasher
    (import "libc" "memory" (memory 1))
    (import "libc" "reset" (func $reset))
    (import "libc" "realloc" (func $realloc (param i32 i32 i32 i32) (result i32)))
    (import "host" "self" (func $self (param i32)))
    (import "host" "send" (func $send (param i32 i32 i32 i32 i32)))
    (import "host" "stop" (func $stop (param i32 i32)))
    ;; result<u64, string> at r: byte r, u64 at r+8 or str at r+8 / r+12;
    ;; result<address, string> at r: byte r, str at r+4 / r+8
    (import "host" "request" (func $request (param i32 i32 i32 i32 i32 i32)))
    (import "host" "send-after" (func $send_after (param i32 i32 i32 i32 i32 i32)))
    (import "host" "spawn" (func $spawn (param i32 i32 i32 i32 i32)))
    (data (i32.const 1024) "init failed")
    (data (i32.const 1056) "fail")
    (data (i32.const 1088) "asked to fail")
    (data (i32.const 1120) "normal")
    (data (i32.const 1152) "shutdown")
    (data (i32.const 1184) "boom")
    (data (i32.const 1216) "\a4pong")                    ;; msgpack "pong"
    (data (i32.const 1248) "\a8stopping")                ;; msgpack "stopping"
    (data (i32.const 1280) "\a7spammed")                 ;; msgpack "spammed"
    (data (i32.const 1312) "\a4ping")                    ;; msgpack "ping"
    (data (i32.const 1376) "crash")
    (data (i32.const 1408) "error")
    (data (i32.const 1440) "stop")
    (data (i32.const 1472) "loop")
    (data (i32.const 1504) "recurse")
    (data (i32.const 1536) "alloc")
    (data (i32.const 1568) "big")
    (data (i32.const 1600) "spam")
    (data (i32.const 1632) "spin")
    (data (i32.const 1664) "\a4spun")                    ;; msgpack "spun"
    (data (i32.const 1696) "timers")
    (data (i32.const 1728) "spawn-loop")
    (data (i32.const 1760) "deep")
    (data (i32.const 1792) "nested-big")
    (data (i32.const 1824) "self-call")
    (data (i32.const 1856) "last-answer")
    (data (i32.const 1888) "echo")
    (data (i32.const 1920) "\a1t")                       ;; msgpack "t"
    (data (i32.const 1952) "\a1x")                       ;; msgpack "x"
    (data (i32.const 1984) "reply")
    (data (i32.const 2016) "failed")
    (data (i32.const 2048) "liar")
    (data (i32.const 2080) "unhashable")
    (data (i32.const 2112) "\c0")                        ;; msgpack nil
    (data (i32.const 2144) "\c6\ff\ff\ff\ff\00")           ;; bin32 of 2^32-1 bytes, 1 present
    (data (i32.const 2176) "\81\91\01\01")               ;; {[1]: 1}

    ;; ---- msgpack helpers (the same block in every guest that reads or writes msgpack) ----
    ;; Decoding walks $mp_pos up to $mp_end. Malformed or truncated input sets the sticky
    ;; $mp_err flag; reads past the end then come from the zeroed bytes at 48..64, so a
    ;; caller only has to check $mp_err (or $mp_done) once it has read what it wants.
    (global $mp_pos (mut i32) (i32.const 0))
    (global $mp_end (mut i32) (i32.const 0))
    (global $mp_err (mut i32) (i32.const 0))
    (global $mp_len (mut i32) (i32.const 0))                ;; length of the last str read
    (func $mp_start (param $p i32) (param $n i32)
      (global.set $mp_pos (local.get $p))
      (global.set $mp_end (i32.add (local.get $p) (local.get $n)))
      (global.set $mp_err (i32.const 0)))
    ;; 1 when everything was read without error and nothing is left over
    (func $mp_done (result i32)
      (i32.and (i32.eqz (global.get $mp_err)) (i32.eq (global.get $mp_pos) (global.get $mp_end))))
    ;; consume n bytes and return their address (the zero area at 48 on error)
    (func $mp_take (param $n i32) (result i32)
      (local $p i32)
      (if (i32.or (global.get $mp_err)
                  (i32.gt_u (local.get $n) (i32.sub (global.get $mp_end) (global.get $mp_pos))))
        (then (global.set $mp_err (i32.const 1))
              (return (i32.const 48))))
      (local.set $p (global.get $mp_pos))
      (global.set $mp_pos (i32.add (local.get $p) (local.get $n)))
      (local.get $p))
    ;; the next byte without consuming it, or -1 at the end
    (func $mp_peek (result i32)
      (if (result i32) (i32.lt_u (global.get $mp_pos) (global.get $mp_end))
        (then (i32.load8_u (global.get $mp_pos)))
        (else (i32.const -1))))
    ;; n (0..8) bytes at p as a big-endian unsigned number
    (func $mp_be (param $p i32) (param $n i32) (result i64)
      (local $v i64)
      (block $done
        (loop $next
          (br_if $done (i32.eqz (local.get $n)))
          (local.set $v (i64.or (i64.shl (local.get $v) (i64.const 8)) (i64.load8_u (local.get $p))))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (local.set $n (i32.sub (local.get $n) (i32.const 1)))
          (br $next)))
      (local.get $v))
    ;; consume n bytes and return them as a big-endian unsigned number
    (func $mp_read_be (param $n i32) (result i64)
      (call $mp_be (call $mp_take (local.get $n)) (local.get $n)))
    ;; an integer: fixint, uint8/16/32/64, int8/16/32/64 (uint64 above 2^63 wraps)
    (func $mp_int (result i64)
      (local $b i32)
      (local.set $b (i32.load8_u (call $mp_take (i32.const 1))))
      (if (global.get $mp_err) (then (return (i64.const 0))))
      (if (i32.lt_u (local.get $b) (i32.const 0x80)) (then (return (i64.extend_i32_u (local.get $b)))))
      (if (i32.ge_u (local.get $b) (i32.const 0xe0)) (then (return (i64.extend8_s (i64.extend_i32_u (local.get $b))))))
      (if (i32.eq (local.get $b) (i32.const 0xcc)) (then (return (call $mp_read_be (i32.const 1)))))
      (if (i32.eq (local.get $b) (i32.const 0xcd)) (then (return (call $mp_read_be (i32.const 2)))))
      (if (i32.eq (local.get $b) (i32.const 0xce)) (then (return (call $mp_read_be (i32.const 4)))))
      (if (i32.eq (local.get $b) (i32.const 0xcf)) (then (return (call $mp_read_be (i32.const 8)))))
      (if (i32.eq (local.get $b) (i32.const 0xd0)) (then (return (i64.extend8_s (call $mp_read_be (i32.const 1))))))
      (if (i32.eq (local.get $b) (i32.const 0xd1)) (then (return (i64.extend16_s (call $mp_read_be (i32.const 2))))))
      (if (i32.eq (local.get $b) (i32.const 0xd2)) (then (return (i64.extend32_s (call $mp_read_be (i32.const 4))))))
      (if (i32.eq (local.get $b) (i32.const 0xd3)) (then (return (call $mp_read_be (i32.const 8)))))
      (global.set $mp_err (i32.const 1))
      (i64.const 0))
    ;; 1 if byte b starts a str (fixstr, str8/16/32)
    (func $mp_is_str (param $b i32) (result i32)
      (i32.or (i32.eq (i32.and (local.get $b) (i32.const 0xe0)) (i32.const 0xa0))
              (i32.and (i32.ge_u (local.get $b) (i32.const 0xd9)) (i32.le_u (local.get $b) (i32.const 0xdb)))))
    ;; 1 if byte b starts an array (fixarray, array16/32)
    (func $mp_is_array (param $b i32) (result i32)
      (i32.or (i32.eq (i32.and (local.get $b) (i32.const 0xf0)) (i32.const 0x90))
              (i32.or (i32.eq (local.get $b) (i32.const 0xdc)) (i32.eq (local.get $b) (i32.const 0xdd)))))
    ;; a str: returns the address of its bytes, length in $mp_len
    (func $mp_str (result i32)
      (local $b i32)
      (local.set $b (i32.load8_u (call $mp_take (i32.const 1))))
      (global.set $mp_len (i32.const 0))
      (if (global.get $mp_err) (then (return (i32.const 48))))
      (if (i32.eq (i32.and (local.get $b) (i32.const 0xe0)) (i32.const 0xa0))
        (then (global.set $mp_len (i32.and (local.get $b) (i32.const 0x1f))))
        (else (if (i32.eq (local.get $b) (i32.const 0xd9))
          (then (global.set $mp_len (i32.wrap_i64 (call $mp_read_be (i32.const 1)))))
          (else (if (i32.eq (local.get $b) (i32.const 0xda))
            (then (global.set $mp_len (i32.wrap_i64 (call $mp_read_be (i32.const 2)))))
            (else (if (i32.eq (local.get $b) (i32.const 0xdb))
              (then (global.set $mp_len (i32.wrap_i64 (call $mp_read_be (i32.const 4)))))
              (else (global.set $mp_err (i32.const 1))))))))))
      (call $mp_take (global.get $mp_len)))
    ;; an array header: returns the element count
    (func $mp_array (result i32)
      (local $b i32)
      (local.set $b (i32.load8_u (call $mp_take (i32.const 1))))
      (if (global.get $mp_err) (then (return (i32.const 0))))
      (if (i32.eq (i32.and (local.get $b) (i32.const 0xf0)) (i32.const 0x90))
        (then (return (i32.and (local.get $b) (i32.const 0x0f)))))
      (if (i32.eq (local.get $b) (i32.const 0xdc)) (then (return (i32.wrap_i64 (call $mp_read_be (i32.const 2))))))
      (if (i32.eq (local.get $b) (i32.const 0xdd)) (then (return (i32.wrap_i64 (call $mp_read_be (i32.const 4))))))
      (global.set $mp_err (i32.const 1))
      (i32.const 0))
    ;; a map header: returns the number of key/value pairs
    (func $mp_map (result i32)
      (local $b i32)
      (local.set $b (i32.load8_u (call $mp_take (i32.const 1))))
      (if (global.get $mp_err) (then (return (i32.const 0))))
      (if (i32.eq (i32.and (local.get $b) (i32.const 0xf0)) (i32.const 0x80))
        (then (return (i32.and (local.get $b) (i32.const 0x0f)))))
      (if (i32.eq (local.get $b) (i32.const 0xde)) (then (return (i32.wrap_i64 (call $mp_read_be (i32.const 2))))))
      (if (i32.eq (local.get $b) (i32.const 0xdf)) (then (return (i32.wrap_i64 (call $mp_read_be (i32.const 4))))))
      (global.set $mp_err (i32.const 1))
      (i32.const 0))
    ;; skip one complete value of any type (iterative: $todo counts values still to skip)
    (func $mp_skip
      (local $todo i64) (local $b i32)
      (local.set $todo (i64.const 1))
      (block $done
        (loop $next
          (br_if $done (i64.eqz (local.get $todo)))
          (br_if $done (global.get $mp_err))
          (local.set $todo (i64.sub (local.get $todo) (i64.const 1)))
          (local.set $b (i32.load8_u (call $mp_take (i32.const 1))))
          (block $case
            ;; positive / negative fixint, nil, false, true
            (br_if $case (i32.lt_u (local.get $b) (i32.const 0x80)))
            (br_if $case (i32.ge_u (local.get $b) (i32.const 0xe0)))
            (br_if $case (i32.eq (local.get $b) (i32.const 0xc0)))
            (br_if $case (i32.eq (local.get $b) (i32.const 0xc2)))
            (br_if $case (i32.eq (local.get $b) (i32.const 0xc3)))
            ;; fixmap, fixarray, fixstr
            (if (i32.lt_u (local.get $b) (i32.const 0x90))
              (then (local.set $todo (i64.add (local.get $todo)
                      (i64.extend_i32_u (i32.shl (i32.and (local.get $b) (i32.const 0x0f)) (i32.const 1)))))
                    (br $case)))
            (if (i32.lt_u (local.get $b) (i32.const 0xa0))
              (then (local.set $todo (i64.add (local.get $todo)
                      (i64.extend_i32_u (i32.and (local.get $b) (i32.const 0x0f)))))
                    (br $case)))
            (if (i32.lt_u (local.get $b) (i32.const 0xc0))
              (then (drop (call $mp_take (i32.and (local.get $b) (i32.const 0x1f)))) (br $case)))
            ;; bin8/16/32 and str8/16/32: a length, then that many bytes
            (if (i32.eq (local.get $b) (i32.const 0xc4))
              (then (drop (call $mp_take (i32.wrap_i64 (call $mp_read_be (i32.const 1))))) (br $case)))
            (if (i32.eq (local.get $b) (i32.const 0xc5))
              (then (drop (call $mp_take (i32.wrap_i64 (call $mp_read_be (i32.const 2))))) (br $case)))
            (if (i32.eq (local.get $b) (i32.const 0xc6))
              (then (drop (call $mp_take (i32.wrap_i64 (call $mp_read_be (i32.const 4))))) (br $case)))
            (if (i32.eq (local.get $b) (i32.const 0xd9))
              (then (drop (call $mp_take (i32.wrap_i64 (call $mp_read_be (i32.const 1))))) (br $case)))
            (if (i32.eq (local.get $b) (i32.const 0xda))
              (then (drop (call $mp_take (i32.wrap_i64 (call $mp_read_be (i32.const 2))))) (br $case)))
            (if (i32.eq (local.get $b) (i32.const 0xdb))
              (then (drop (call $mp_take (i32.wrap_i64 (call $mp_read_be (i32.const 4))))) (br $case)))
            ;; ext8/16/32: a length, a type byte, then the data
            (if (i32.eq (local.get $b) (i32.const 0xc7))
              (then (local.set $b (i32.wrap_i64 (call $mp_read_be (i32.const 1))))
                    (drop (call $mp_take (i32.const 1))) (drop (call $mp_take (local.get $b))) (br $case)))
            (if (i32.eq (local.get $b) (i32.const 0xc8))
              (then (local.set $b (i32.wrap_i64 (call $mp_read_be (i32.const 2))))
                    (drop (call $mp_take (i32.const 1))) (drop (call $mp_take (local.get $b))) (br $case)))
            (if (i32.eq (local.get $b) (i32.const 0xc9))
              (then (local.set $b (i32.wrap_i64 (call $mp_read_be (i32.const 4))))
                    (drop (call $mp_take (i32.const 1))) (drop (call $mp_take (local.get $b))) (br $case)))
            ;; float32/64, uint8..64, int8..64
            (if (i32.eq (local.get $b) (i32.const 0xca)) (then (drop (call $mp_take (i32.const 4))) (br $case)))
            (if (i32.eq (local.get $b) (i32.const 0xcb)) (then (drop (call $mp_take (i32.const 8))) (br $case)))
            (if (i32.and (i32.ge_u (local.get $b) (i32.const 0xcc)) (i32.le_u (local.get $b) (i32.const 0xd3)))
              (then (drop (call $mp_take (i32.shl (i32.const 1) (i32.and (i32.sub (local.get $b) (i32.const 0xcc)) (i32.const 3)))))
                    (br $case)))
            ;; fixext1/2/4/8/16: a type byte and 1..16 bytes of data
            (if (i32.and (i32.ge_u (local.get $b) (i32.const 0xd4)) (i32.le_u (local.get $b) (i32.const 0xd8)))
              (then (drop (call $mp_take (i32.add (i32.const 1) (i32.shl (i32.const 1) (i32.sub (local.get $b) (i32.const 0xd4))))))
                    (br $case)))
            ;; array16/32, map16/32
            (if (i32.eq (local.get $b) (i32.const 0xdc))
              (then (local.set $todo (i64.add (local.get $todo) (call $mp_read_be (i32.const 2)))) (br $case)))
            (if (i32.eq (local.get $b) (i32.const 0xdd))
              (then (local.set $todo (i64.add (local.get $todo) (call $mp_read_be (i32.const 4)))) (br $case)))
            (if (i32.eq (local.get $b) (i32.const 0xde))
              (then (local.set $todo (i64.add (local.get $todo) (i64.shl (call $mp_read_be (i32.const 2)) (i64.const 1)))) (br $case)))
            (if (i32.eq (local.get $b) (i32.const 0xdf))
              (then (local.set $todo (i64.add (local.get $todo) (i64.shl (call $mp_read_be (i32.const 4)) (i64.const 1)))) (br $case)))
            ;; 0xc1 is never used
            (global.set $mp_err (i32.const 1)))
          (br $next))))
    ;; 1 if the n bytes at p equal the n2 bytes at q
    (func $mp_eq (param $p i32) (param $n i32) (param $q i32) (param $n2 i32) (result i32)
      (if (i32.ne (local.get $n) (local.get $n2)) (then (return (i32.const 0))))
      (block $done
        (loop $next
          (br_if $done (i32.eqz (local.get $n)))
          (if (i32.ne (i32.load8_u (local.get $p)) (i32.load8_u (local.get $q))) (then (return (i32.const 0))))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (local.set $q (i32.add (local.get $q) (i32.const 1)))
          (local.set $n (i32.sub (local.get $n) (i32.const 1)))
          (br $next)))
      (i32.const 1))
    ;; write the low n bytes of v big-endian at dst; returns the end
    (func $mp_put_be (param $dst i32) (param $v i64) (param $n i32) (result i32)
      (local $i i32)
      (local.set $i (local.get $n))
      (block $done
        (loop $next
          (br_if $done (i32.eqz (local.get $i)))
          (local.set $i (i32.sub (local.get $i) (i32.const 1)))
          (i64.store8 (i32.add (local.get $dst) (local.get $i)) (local.get $v))
          (local.set $v (i64.shr_u (local.get $v) (i64.const 8)))
          (br $next)))
      (i32.add (local.get $dst) (local.get $n)))
    ;; a type byte followed by n big-endian bytes of v; returns the end
    (func $mp_put_tagged (param $dst i32) (param $tag i32) (param $v i64) (param $n i32) (result i32)
      (i32.store8 (local.get $dst) (local.get $tag))
      (call $mp_put_be (i32.add (local.get $dst) (i32.const 1)) (local.get $v) (local.get $n)))
    ;; an unsigned integer in its shortest form (at most 9 bytes); returns the end
    (func $mp_enc_uint (param $dst i32) (param $v i64) (result i32)
      (if (i64.lt_u (local.get $v) (i64.const 0x80))
        (then (i64.store8 (local.get $dst) (local.get $v)) (return (i32.add (local.get $dst) (i32.const 1)))))
      (if (i64.lt_u (local.get $v) (i64.const 0x100))
        (then (return (call $mp_put_tagged (local.get $dst) (i32.const 0xcc) (local.get $v) (i32.const 1)))))
      (if (i64.lt_u (local.get $v) (i64.const 0x10000))
        (then (return (call $mp_put_tagged (local.get $dst) (i32.const 0xcd) (local.get $v) (i32.const 2)))))
      (if (i64.lt_u (local.get $v) (i64.const 0x100000000))
        (then (return (call $mp_put_tagged (local.get $dst) (i32.const 0xce) (local.get $v) (i32.const 4)))))
      (call $mp_put_tagged (local.get $dst) (i32.const 0xcf) (local.get $v) (i32.const 8)))
    ;; a signed integer in its shortest form (at most 9 bytes); returns the end
    (func $mp_enc_int (param $dst i32) (param $v i64) (result i32)
      (if (i64.ge_s (local.get $v) (i64.const 0))
        (then (return (call $mp_enc_uint (local.get $dst) (local.get $v)))))
      (if (i64.ge_s (local.get $v) (i64.const -32))
        (then (i64.store8 (local.get $dst) (local.get $v)) (return (i32.add (local.get $dst) (i32.const 1)))))
      (if (i64.ge_s (local.get $v) (i64.const -128))
        (then (return (call $mp_put_tagged (local.get $dst) (i32.const 0xd0) (local.get $v) (i32.const 1)))))
      (if (i64.ge_s (local.get $v) (i64.const -32768))
        (then (return (call $mp_put_tagged (local.get $dst) (i32.const 0xd1) (local.get $v) (i32.const 2)))))
      (if (i64.ge_s (local.get $v) (i64.const -2147483648))
        (then (return (call $mp_put_tagged (local.get $dst) (i32.const 0xd2) (local.get $v) (i32.const 4)))))
      (call $mp_put_tagged (local.get $dst) (i32.const 0xd3) (local.get $v) (i32.const 8)))
    ;; a str holding the n bytes at p (at most n + 5 bytes); returns the end
    (func $mp_enc_str (param $dst i32) (param $p i32) (param $n i32) (result i32)
      (local $at i32)
      (if (i32.lt_u (local.get $n) (i32.const 32))
        (then (i32.store8 (local.get $dst) (i32.or (i32.const 0xa0) (local.get $n)))
              (local.set $at (i32.add (local.get $dst) (i32.const 1))))
        (else (if (i32.lt_u (local.get $n) (i32.const 0x100))
          (then (local.set $at (call $mp_put_tagged (local.get $dst) (i32.const 0xd9) (i64.extend_i32_u (local.get $n)) (i32.const 1))))
          (else (if (i32.lt_u (local.get $n) (i32.const 0x10000))
            (then (local.set $at (call $mp_put_tagged (local.get $dst) (i32.const 0xda) (i64.extend_i32_u (local.get $n)) (i32.const 2))))
            (else (local.set $at (call $mp_put_tagged (local.get $dst) (i32.const 0xdb) (i64.extend_i32_u (local.get $n)) (i32.const 4)))))))))
      (memory.copy (local.get $at) (local.get $p) (local.get $n))
      (i32.add (local.get $at) (local.get $n)))
    ;; ---- end of msgpack helpers ----

    ;; ok(some(the n bytes at p)) for a call, ok(none) for anything else
    (func $answer (param $kind i32) (param $p i32) (param $n i32) (result i32)
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.store8 (i32.const 4) (i32.const 0))
      (if (i32.eq (local.get $kind) (i32.const 1))
        (then
          (i32.store8 (i32.const 4) (i32.const 1))
          (i32.store (i32.const 8) (local.get $p))
          (i32.store (i32.const 12) (local.get $n))))
      (i32.const 0))
    ;; is the command (c, n) the constant at q of length m?
    (func $is (param $c i32) (param $n i32) (param $q i32) (param $m i32) (result i32)
      (call $mp_eq (local.get $c) (local.get $n) (local.get $q) (local.get $m)))
    (func $recurse (param $depth i32) (result i32)
      (i32.add (call $recurse (i32.add (local.get $depth) (i32.const 1))) (local.get $depth)))
    ;; count n down to 0, one step per iteration (nothing when n <= 0)
    (func $spin (param $n i64)
      (if (i64.gt_s (local.get $n) (i64.const 0))
        (then
          (loop $again
            (br_if $again (i64.ne (local.tee $n (i64.sub (local.get $n) (i64.const 1))) (i64.const 0)))))))

    ;; the msgpack int v on the heap, answered
    (func $answer_int (param $kind i32) (param $v i64) (result i32)
      (local $p i32)
      (local.set $p (call $realloc (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 9)))
      (call $answer (local.get $kind) (local.get $p)
            (i32.sub (call $mp_enc_int (local.get $p) (local.get $v)) (local.get $p))))
    ;; ["error", the n bytes at p as a str], answered
    (func $answer_error (param $kind i32) (param $p i32) (param $n i32) (result i32)
      (local $out i32) (local $at i32)
      (local.set $out (call $realloc (i32.const 0) (i32.const 0) (i32.const 1) (i32.add (local.get $n) (i32.const 12))))
      (i32.store8 (local.get $out) (i32.const 0x92))
      (local.set $at (call $mp_enc_str (i32.add (local.get $out) (i32.const 1)) (i32.const 1408) (i32.const 5)))
      (local.set $at (call $mp_enc_str (local.get $at) (local.get $p) (local.get $n)))
      (call $answer (local.get $kind) (local.get $out) (i32.sub (local.get $at) (local.get $out))))
    ;; n levels of one-element arrays around nil, answered
    (func $answer_deep (param $kind i32) (param $n i64) (result i32)
      (local $p i32) (local $len i32)
      (if (i64.lt_s (local.get $n) (i64.const 0)) (then (local.set $n (i64.const 0))))
      (if (i64.gt_s (local.get $n) (i64.const 0x10000000)) (then (local.set $n (i64.const 0x10000000))))
      (local.set $len (i32.wrap_i64 (local.get $n)))
      (local.set $p (call $realloc (i32.const 0) (i32.const 0) (i32.const 1) (i32.add (local.get $len) (i32.const 1))))
      (memory.fill (local.get $p) (i32.const 0x91) (local.get $len))
      (i32.store8 (i32.add (local.get $p) (local.get $len)) (i32.const 0xc0))
      (call $answer (local.get $kind) (local.get $p) (i32.add (local.get $len) (i32.const 1))))
    ;; request(self(), the n bytes at p, ms): the id as an int, or ["error", reason]
    (func $self_call (param $kind i32) (param $p i32) (param $n i32) (param $ms i32) (result i32)
      (call $self (i32.const 16))
      (call $request (i32.load (i32.const 16)) (i32.load (i32.const 20)) (local.get $p) (local.get $n)
                     (local.get $ms) (i32.const 16))
      (if (i32.load8_u (i32.const 16))
        (then (return (call $answer_error (local.get $kind) (i32.load (i32.const 24)) (i32.load (i32.const 28))))))
      (call $answer_int (local.get $kind) (i64.load (i32.const 24))))
    ;; keep a reply (2) / failed (3) envelope's payload for "last-answer"
    (func $remember (param $kind i32) (param $p i32) (param $n i32)
      (i32.store (i32.const 32768) (local.get $kind))
      (if (i32.gt_u (local.get $n) (i32.const 8000))
        (then (local.set $p (i32.const 2112)) (local.set $n (i32.const 1))))
      (i32.store (i32.const 32772) (local.get $n))
      (memory.copy (i32.const 32784) (local.get $p) (local.get $n)))
    (func $last_answer (param $kind i32) (result i32)
      (local $out i32) (local $at i32) (local $n i32)
      (if (i32.eqz (i32.load (i32.const 32768)))
        (then (return (call $answer (local.get $kind) (i32.const 2112) (i32.const 1)))))
      (local.set $n (i32.load (i32.const 32772)))
      (local.set $out (call $realloc (i32.const 0) (i32.const 0) (i32.const 1) (i32.add (local.get $n) (i32.const 16))))
      (i32.store8 (local.get $out) (i32.const 0x92))
      (if (i32.eq (i32.load (i32.const 32768)) (i32.const 2))
        (then (local.set $at (call $mp_enc_str (i32.add (local.get $out) (i32.const 1)) (i32.const 1984) (i32.const 5))))
        (else (local.set $at (call $mp_enc_str (i32.add (local.get $out) (i32.const 1)) (i32.const 2016) (i32.const 6)))))
      (memory.copy (local.get $at) (i32.const 32784) (local.get $n))
      (call $answer (local.get $kind) (local.get $out) (i32.sub (i32.add (local.get $at) (local.get $n)) (local.get $out))))

    ;; init(args) -> result<_, string>
    (func (export "init") (param $args i32) (param $len i32) (result i32)
      (local $s i32)
      (i32.store8 (i32.const 0) (i32.const 0))
      (call $mp_start (local.get $args) (local.get $len))
      (local.set $s (call $mp_str))
      (if (i32.and (call $mp_done) (call $is (local.get $s) (global.get $mp_len) (i32.const 1056) (i32.const 4)))
        (then
          (i32.store8 (i32.const 0) (i32.const 1))
          (i32.store (i32.const 4) (i32.const 1024))
          (i32.store (i32.const 8) (i32.const 11))))
      (i32.const 0))

    ;; handle(kind, kind-value, sender?, sender-ptr, sender-len, payload-ptr, payload-len)
    ;;   -> result<option<list<u8>>, string>, written at offset 0
    (func (export "handle") (param $kind i32) (param $ref i64) (param $has_sender i32)
          (param $sender i32) (param $sender_len i32) (param $payload i32) (param $len i32) (result i32)
      (local $c i32) (local $n i32) (local $me i32) (local $me_len i32) (local $i i32) (local $big i32)
      (local $iters i64)
      (local $ok i64) (local $t i32) (local $tl i32) (local $m i32)
      (if (i32.or (i32.eq (local.get $kind) (i32.const 2)) (i32.eq (local.get $kind) (i32.const 3)))
        (then (call $remember (local.get $kind) (local.get $payload) (local.get $len))))
      (if (i32.gt_u (local.get $kind) (i32.const 1))      ;; not a cast or a call: ignore
        (then (return (call $answer (local.get $kind) (i32.const 0) (i32.const 0)))))
      ;; ["spam", target], ["deep", n], ["self-call", msg, ms]
      (call $mp_start (local.get $payload) (local.get $len))
      (if (call $mp_is_array (call $mp_peek))
        (then
          (local.set $n (call $mp_array))
          (local.set $c (call $mp_str))
          (local.set $m (global.get $mp_len))
          (if (i32.and (i32.or (i32.eq (local.get $n) (i32.const 2)) (i32.eq (local.get $n) (i32.const 3)))
                       (call $is (local.get $c) (local.get $m) (i32.const 1600) (i32.const 4)))
            (then
              (local.set $t (call $mp_str))
              (local.set $tl (global.get $mp_len))
              (local.set $iters (i64.const 100000))
              (if (i32.eq (local.get $n) (i32.const 3)) (then (local.set $iters (call $mp_int))))
              (if (i64.lt_s (local.get $iters) (i64.const 0)) (then (local.set $iters (i64.const 0))))
              (if (call $mp_done)
                (then
                  (block $sent
                    (loop $next
                      (br_if $sent (i64.ge_u (i64.extend_i32_u (local.get $i)) (local.get $iters)))
                      (call $send (local.get $t) (local.get $tl) (i32.const 1952) (i32.const 2) (i32.const 16))
                      (if (i32.eqz (i32.load8_u (i32.const 16))) (then (local.set $ok (i64.add (local.get $ok) (i64.const 1)))))
                      (local.set $i (i32.add (local.get $i) (i32.const 1)))
                      (br $next)))
                  (return (call $answer_int (local.get $kind) (local.get $ok)))))))
          (if (i32.and (i32.eq (local.get $n) (i32.const 2)) (call $is (local.get $c) (local.get $m) (i32.const 1760) (i32.const 4)))
            (then
              (local.set $iters (call $mp_int))
              (if (call $mp_done)
                (then (return (call $answer_deep (local.get $kind) (local.get $iters)))))))
          (if (i32.and (i32.eq (local.get $n) (i32.const 3)) (call $is (local.get $c) (local.get $m) (i32.const 1824) (i32.const 9)))
            (then
              (local.set $t (global.get $mp_pos))
              (call $mp_skip)
              (local.set $tl (i32.sub (global.get $mp_pos) (local.get $t)))
              (local.set $iters (call $mp_int))
              (if (call $mp_done)
                (then (return (call $self_call (local.get $kind) (local.get $t) (local.get $tl)
                                                (i32.wrap_i64 (local.get $iters))))))))))
      (call $mp_start (local.get $payload) (local.get $len))
      (if (call $mp_is_array (call $mp_peek))             ;; ["spin", n]; other arrays: pong
        (then
          (if (i32.eq (call $mp_array) (i32.const 2))
            (then
              (local.set $c (call $mp_str))
              (local.set $n (global.get $mp_len))
              (local.set $iters (call $mp_int))
              (if (i32.and (call $mp_done) (call $is (local.get $c) (local.get $n) (i32.const 1632) (i32.const 4)))
                (then
                  (call $spin (local.get $iters))
                  (return (call $answer (local.get $kind) (i32.const 1664) (i32.const 5)))))))))
      (call $mp_start (local.get $payload) (local.get $len))
      (local.set $c (call $mp_str))
      (local.set $n (global.get $mp_len))
      (if (i32.eqz (call $mp_done))                       ;; not a str: pong
        (then (return (call $answer (local.get $kind) (i32.const 1216) (i32.const 5)))))
      (if (call $is (local.get $c) (local.get $n) (i32.const 1376) (i32.const 5))   ;; crash
        (then unreachable))
      (if (call $is (local.get $c) (local.get $n) (i32.const 1408) (i32.const 5))   ;; error
        (then
          (i32.store8 (i32.const 0) (i32.const 1))
          (i32.store (i32.const 4) (i32.const 1088))
          (i32.store (i32.const 8) (i32.const 13))
          (return (i32.const 0))))
      (if (call $is (local.get $c) (local.get $n) (i32.const 1440) (i32.const 4))   ;; stop
        (then
          (call $stop (i32.const 1120) (i32.const 6))
          (return (call $answer (local.get $kind) (i32.const 1248) (i32.const 9)))))
      (if (call $is (local.get $c) (local.get $n) (i32.const 1152) (i32.const 8))   ;; shutdown
        (then
          (call $stop (i32.const 1152) (i32.const 8))
          (return (call $answer (local.get $kind) (i32.const 1248) (i32.const 9)))))
      (if (call $is (local.get $c) (local.get $n) (i32.const 1184) (i32.const 4))   ;; boom
        (then
          (call $stop (i32.const 1184) (i32.const 4))
          (return (call $answer (i32.const 0) (i32.const 0) (i32.const 0)))))
      (if (call $is (local.get $c) (local.get $n) (i32.const 1472) (i32.const 4))   ;; loop
        (then (loop $forever (br $forever)) unreachable))
      (if (call $is (local.get $c) (local.get $n) (i32.const 1504) (i32.const 7))   ;; recurse
        (then (drop (call $recurse (i32.const 0))) unreachable))
      (if (call $is (local.get $c) (local.get $n) (i32.const 1536) (i32.const 5))   ;; alloc
        (then
          (loop $more
            (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
          unreachable))
      (if (call $is (local.get $c) (local.get $n) (i32.const 1568) (i32.const 3))   ;; big
        (then
          ;; bin32 header (0xc6, length 4194304) and 4 MiB of zeros, on the bump heap
          (local.set $big (call $realloc (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 4194309)))
          (drop (call $mp_put_tagged (local.get $big) (i32.const 0xc6) (i64.const 4194304) (i32.const 4)))
          (memory.fill (i32.add (local.get $big) (i32.const 5)) (i32.const 0) (i32.const 4194304))
          (return (call $answer (local.get $kind) (local.get $big) (i32.const 4194309)))))
      (if (call $is (local.get $c) (local.get $n) (i32.const 1600) (i32.const 4))   ;; spam
        (then
          (call $self (i32.const 16))
          (local.set $me (i32.load (i32.const 16)))
          (local.set $me_len (i32.load (i32.const 20)))
          (block $done
            (loop $next
              (br_if $done (i32.ge_u (local.get $i) (i32.const 100000)))
              (call $send (local.get $me) (local.get $me_len) (i32.const 1312) (i32.const 5) (i32.const 16))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br $next)))
          (return (call $answer (local.get $kind) (i32.const 1280) (i32.const 8)))))
      (if (call $is (local.get $c) (local.get $n) (i32.const 1696) (i32.const 6))   ;; timers
        (then
          (call $self (i32.const 16))
          (local.set $me (i32.load (i32.const 16)))
          (local.set $me_len (i32.load (i32.const 20)))
          (block $done
            (loop $next
              (br_if $done (i32.ge_u (local.get $i) (i32.const 10000)))
              (call $send_after (local.get $me) (local.get $me_len) (i32.const 1920) (i32.const 2) (i32.const 60000) (i32.const 16))
              (if (i32.eqz (i32.load8_u (i32.const 16))) (then (local.set $ok (i64.add (local.get $ok) (i64.const 1)))))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br $next)))
          (return (call $answer_int (local.get $kind) (local.get $ok)))))
      (if (call $is (local.get $c) (local.get $n) (i32.const 1728) (i32.const 10))  ;; spawn-loop
        (then
          (block $done
            (loop $next
              (br_if $done (i32.ge_u (local.get $i) (i32.const 10000)))
              (call $spawn (i32.const 1888) (i32.const 4) (i32.const 2112) (i32.const 1) (i32.const 16))
              (if (i32.eqz (i32.load8_u (i32.const 16))) (then (local.set $ok (i64.add (local.get $ok) (i64.const 1)))))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br $next)))
          (return (call $answer_int (local.get $kind) (local.get $ok)))))
      (if (call $is (local.get $c) (local.get $n) (i32.const 1760) (i32.const 4))   ;; deep
        (then (return (call $answer_deep (local.get $kind) (i64.const 100000)))))
      (if (call $is (local.get $c) (local.get $n) (i32.const 1792) (i32.const 10))  ;; nested-big
        (then (return (call $answer_deep (local.get $kind) (i64.const 1000000)))))
      (if (call $is (local.get $c) (local.get $n) (i32.const 2048) (i32.const 4))   ;; liar
        (then (return (call $answer (local.get $kind) (i32.const 2144) (i32.const 6)))))
      (if (call $is (local.get $c) (local.get $n) (i32.const 2080) (i32.const 10))  ;; unhashable
        (then (return (call $answer (local.get $kind) (i32.const 2176) (i32.const 4)))))
      (if (call $is (local.get $c) (local.get $n) (i32.const 1824) (i32.const 9))   ;; self-call
        (then (return (call $self_call (local.get $kind) (i32.const 1312) (i32.const 5) (i32.const 100)))))
      (if (call $is (local.get $c) (local.get $n) (i32.const 1856) (i32.const 11))  ;; last-answer
        (then (return (call $last_answer (local.get $kind)))))
      ;; "ping" and everything else
      (call $answer (local.get $kind) (i32.const 1216) (i32.const 5)))

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
  (core instance $crasher (instantiate $Crasher
    (with "libc" (instance $libc))
    (with "host" (instance
      (export "self" (func $self))
      (export "send" (func $send))
      (export "stop" (func $stop))
      (export "request" (func $request))
      (export "send-after" (func $send-after))
      (export "spawn" (func $spawn))))))

  (func (export "init") (param "args" (list u8)) (result (result (error string)))
    (canon lift (core func $crasher "init") (memory $memory) (realloc $realloc) (post-return (core func $crasher "post"))))
  (func (export "handle") (param "msg" $envelope) (result (result (option (list u8)) (error string)))
    (canon lift (core func $crasher "handle") (memory $memory) (realloc $realloc) (post-return (core func $crasher "post"))))
  (func (export "snapshot") (result (list u8))
    (canon lift (core func $crasher "snapshot") (memory $memory) (post-return (core func $crasher "post"))))
  (func (export "upgrade") (param "from-version" string) (param "state" (list u8)) (result (result (error string)))
    (canon lift (core func $crasher "upgrade") (memory $memory) (realloc $realloc) (post-return (core func $crasher "post")))))
