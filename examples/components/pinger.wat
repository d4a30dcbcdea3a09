;; pinger: exercises every host function except stop. Commands are msgpack payloads of a
;; call (a cast runs the same command and drops the reply; "ask" and "after" from a cast
;; are not answered later either):
;;
;;   "ping"                       reply "pong"
;;   "self"                       reply self() as a str
;;   "now"                        reply now-ms() as an unsigned int (shortest form)
;;   "log"                        log(info, "hello from pinger"), reply "ok"
;;   "last-down"                  reply the payload of the last down(id) envelope as-is, or nil
;;   "last-exit"                  reply the payload of the last exit envelope as-is, or nil
;;   "last-exit-sender"           reply the sender of the last exit envelope as a str, or nil
;;   ["ask", target]              request(target, "ping", 1000 ms) and defer the reply; the
;;   ["ask", target, msg]         optional third element (any msgpack value) is sent instead of
;;                                "ping". A later reply(id) or failed(id) for that request
;;                                answers the call with host reply(call, payload as-is).
;;   ["after", ms]                send-after(self(), "tick", ms) and defer; the timer(id)
;;                                envelope answers the call with "tock"
;;   ["cancel", ms]               send-after(self(), "tick", ms), cancel-timer at once, reply
;;                                the bool cancel-timer returned
;;   ["spawn", component]         spawn(component, nil), reply the address as a str
;;   ["monitor", target]          monitor(target), reply the id as an int
;;   ["link", target]             link(target), reply "ok"
;;   ["send", target, value]      send(target, the raw msgpack bytes of value), reply "ok"
;;
;; A host err is answered with ["error", reason]; a payload that is none of the above with
;; ["error", "unknown message"]; "ask"/"after" with 64 calls already pending with
;; ["error", "too many pending calls"]. reply/failed/timer envelopes that match no pending
;; call are dropped. snapshot is empty; upgrade always ok (state is not carried over).
;;
;; Memory below the heap base (65536):
;;   0..16         result area of every export
;;   16..48        return area of host calls
;;   48..64        zero bytes the msgpack reader falls back on
;;   1024..2048    constants, 32 bytes apart (a few one-byte ones 8 apart)
;;   4096..6144    pending calls: 64 entries of 32 bytes, i32 tag at +0 (0 free, 1 request,
;;                 2 timer), i64 request/timer id at +8, i64 call id at +16
;;   8192..16384   payload of the last down envelope (longer ones are replaced by the str
;;                 "payload too large")
;;   16384..24576  payload of the last exit envelope (same limit)
;;   24576..25600  sender of the last exit envelope (longer addresses are not kept)
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
  (alias export $types "level" (type $level))
  (alias export $types "envelope" (type $envelope))
  (import "airssys:actor/host@0.1.0" (instance $host
    (alias outer 1 $address (type $a))
    (export "address" (type $addr (eq $a)))
    (alias outer 1 $level (type $l))
    (export "level" (type $lvl (eq $l)))
    (export "self" (func (result $addr)))
    (export "send" (func (param "to" $addr) (param "payload" (list u8)) (result (result (error string)))))
    (export "request" (func (param "to" $addr) (param "payload" (list u8)) (param "timeout-ms" u32)
                            (result (result u64 (error string)))))
    (export "send-after" (func (param "to" $addr) (param "payload" (list u8)) (param "delay-ms" u32)
                               (result (result u64 (error string)))))
    (export "cancel-timer" (func (param "timer" u64) (result bool)))
    (export "spawn" (func (param "component" string) (param "args" (list u8)) (result (result $addr (error string)))))
    (export "link" (func (param "target" $addr) (result (result (error string)))))
    (export "monitor" (func (param "target" $addr) (result (result u64 (error string)))))
    (export "log" (func (param "level" $lvl) (param "message" string)))
    (export "now-ms" (func (result u64)))
    (export "reply" (func (param "call" u64) (param "payload" (list u8)) (result (result (error string)))))))

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
  (core func $request (canon lower (func $host "request") (memory $memory) (realloc $realloc)))
  (core func $send-after (canon lower (func $host "send-after") (memory $memory) (realloc $realloc)))
  (core func $cancel-timer (canon lower (func $host "cancel-timer")))
  (core func $spawn (canon lower (func $host "spawn") (memory $memory) (realloc $realloc)))
  (core func $link (canon lower (func $host "link") (memory $memory) (realloc $realloc)))
  (core func $monitor (canon lower (func $host "monitor") (memory $memory) (realloc $realloc)))
  (core func $log (canon lower (func $host "log") (memory $memory)))
  (core func $now-ms (canon lower (func $host "now-ms")))
  (core func $reply (canon lower (func $host "reply") (memory $memory) (realloc $realloc)))

  (core module $Pinger
    (import "libc" "memory" (memory 1))
    (import "libc" "reset" (func $reset))
    (import "libc" "realloc" (func $realloc (param i32 i32 i32 i32) (result i32)))
    ;; result<_, string> and result<address, string> at r: byte r, str at r+4 / r+8;
    ;; result<u64, string> at r: byte r, u64 at r+8 or str at r+8 / r+12
    (import "host" "self" (func $self (param i32)))
    (import "host" "send" (func $send (param i32 i32 i32 i32 i32)))
    (import "host" "request" (func $request (param i32 i32 i32 i32 i32 i32)))
    (import "host" "send-after" (func $send_after (param i32 i32 i32 i32 i32 i32)))
    (import "host" "cancel-timer" (func $cancel_timer (param i64) (result i32)))
    (import "host" "spawn" (func $spawn (param i32 i32 i32 i32 i32)))
    (import "host" "link" (func $link (param i32 i32 i32)))
    (import "host" "monitor" (func $monitor (param i32 i32 i32)))
    (import "host" "log" (func $log (param i32 i32 i32)))
    (import "host" "now-ms" (func $now_ms (result i64)))
    (import "host" "reply" (func $reply (param i64 i32 i32 i32)))
    (data (i32.const 1024) "ping")
    (data (i32.const 1056) "self")
    (data (i32.const 1088) "now")
    (data (i32.const 1120) "log")
    (data (i32.const 1152) "last-down")
    (data (i32.const 1184) "last-exit")
    (data (i32.const 1216) "last-exit-sender")
    (data (i32.const 1248) "ask")
    (data (i32.const 1280) "after")
    (data (i32.const 1312) "cancel")
    (data (i32.const 1344) "spawn")
    (data (i32.const 1376) "monitor")
    (data (i32.const 1408) "link")
    (data (i32.const 1440) "send")
    (data (i32.const 1472) "hello from pinger")
    (data (i32.const 1504) "\a4pong")                    ;; msgpack "pong"
    (data (i32.const 1536) "\a4ping")                    ;; msgpack "ping"
    (data (i32.const 1568) "\a4tick")                    ;; msgpack "tick"
    (data (i32.const 1600) "\a4tock")                    ;; msgpack "tock"
    (data (i32.const 1632) "\a2ok")                      ;; msgpack "ok"
    (data (i32.const 1664) "\c0")                        ;; msgpack nil
    (data (i32.const 1672) "\c2")                        ;; msgpack false
    (data (i32.const 1680) "\c3")                        ;; msgpack true
    (data (i32.const 1696) "error")
    (data (i32.const 1728) "unknown message")
    (data (i32.const 1760) "too many pending calls")
    (data (i32.const 1792) "\b1payload too large")       ;; msgpack "payload too large"
    (global $down_len (mut i32) (i32.const -1))          ;; -1: no down envelope yet
    (global $exit_len (mut i32) (i32.const -1))          ;; -1: no exit envelope yet
    (global $exit_sender_len (mut i32) (i32.const -1))   ;; -1: none
    (global $pend_call (mut i64) (i64.const 0))          ;; call id found by $pend_take

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

    (func $alloc (param $n i32) (result i32)
      (call $realloc (i32.const 0) (i32.const 0) (i32.const 1) (local.get $n)))

    ;; ---- the handle result at 0 ----
    ;; ok(none)
    (func $none (result i32)
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.store8 (i32.const 4) (i32.const 0))
      (i32.const 0))
    ;; ok(some(the n bytes at p)) for a call, ok(none) for a cast
    (func $answer (param $kind i32) (param $p i32) (param $n i32) (result i32)
      (drop (call $none))
      (if (i32.eq (local.get $kind) (i32.const 1))
        (then
          (i32.store8 (i32.const 4) (i32.const 1))
          (i32.store (i32.const 8) (local.get $p))
          (i32.store (i32.const 12) (local.get $n))))
      (i32.const 0))
    ;; answer with the n bytes at p as a msgpack str
    (func $answer_str (param $kind i32) (param $p i32) (param $n i32) (result i32)
      (local $out i32)
      (local.set $out (call $alloc (i32.add (local.get $n) (i32.const 5))))
      (call $answer (local.get $kind) (local.get $out)
        (i32.sub (call $mp_enc_str (local.get $out) (local.get $p) (local.get $n)) (local.get $out))))
    ;; answer with ["error", the n bytes at p]
    (func $answer_error (param $kind i32) (param $p i32) (param $n i32) (result i32)
      (local $out i32) (local $end i32)
      (local.set $out (call $alloc (i32.add (local.get $n) (i32.const 12))))
      (i32.store8 (local.get $out) (i32.const 0x92))
      (local.set $end (call $mp_enc_str (i32.add (local.get $out) (i32.const 1)) (i32.const 1696) (i32.const 5)))
      (local.set $end (call $mp_enc_str (local.get $end) (local.get $p) (local.get $n)))
      (call $answer (local.get $kind) (local.get $out) (i32.sub (local.get $end) (local.get $out))))
    (func $unknown (param $kind i32) (result i32)
      (call $answer_error (local.get $kind) (i32.const 1728) (i32.const 15)))

    ;; ---- pending calls ----
    ;; a free entry, or 0 when all 64 are taken
    (func $pend_free (result i32)
      (local $e i32)
      (local.set $e (i32.const 4096))
      (block $none
        (loop $next
          (br_if $none (i32.ge_u (local.get $e) (i32.const 6144)))
          (if (i32.eqz (i32.load (local.get $e))) (then (return (local.get $e))))
          (local.set $e (i32.add (local.get $e) (i32.const 32)))
          (br $next)))
      (i32.const 0))
    (func $pend_put (param $e i32) (param $tag i32) (param $id i64) (param $call i64)
      (i32.store (local.get $e) (local.get $tag))
      (i64.store offset=8 (local.get $e) (local.get $id))
      (i64.store offset=16 (local.get $e) (local.get $call)))
    ;; find the entry (tag, id), free it and leave its call id in $pend_call; 0 if none
    (func $pend_take (param $tag i32) (param $id i64) (result i32)
      (local $e i32)
      (local.set $e (i32.const 4096))
      (block $none
        (loop $next
          (br_if $none (i32.ge_u (local.get $e) (i32.const 6144)))
          (if (i32.and (i32.eq (i32.load (local.get $e)) (local.get $tag))
                       (i64.eq (i64.load offset=8 (local.get $e)) (local.get $id)))
            (then
              (global.set $pend_call (i64.load offset=16 (local.get $e)))
              (i32.store (local.get $e) (i32.const 0))
              (return (i32.const 1))))
          (local.set $e (i32.add (local.get $e) (i32.const 32)))
          (br $next)))
      (i32.const 0))

    ;; copy n bytes from p to dst if they fit in cap; returns the length kept there
    (func $keep (param $dst i32) (param $cap i32) (param $p i32) (param $n i32) (result i32)
      (if (i32.gt_u (local.get $n) (local.get $cap))
        (then (memory.copy (local.get $dst) (i32.const 1792) (i32.const 18))
              (return (i32.const 18))))
      (memory.copy (local.get $dst) (local.get $p) (local.get $n))
      (local.get $n))

    ;; init(args) -> result<_, string>: any args
    (func (export "init") (param i32 i32) (result i32)
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.const 0))

    ;; handle(kind, kind-value, sender?, sender-ptr, sender-len, payload-ptr, payload-len)
    ;;   -> result<option<list<u8>>, string>, written at offset 0
    (func (export "handle") (param $kind i32) (param $ref i64) (param $has_sender i32)
          (param $sender i32) (param $sender_len i32) (param $payload i32) (param $len i32) (result i32)
      ;; reply(id) / failed(id): answer the call that asked, with the payload as-is
      (if (i32.or (i32.eq (local.get $kind) (i32.const 2)) (i32.eq (local.get $kind) (i32.const 3)))
        (then
          (if (call $pend_take (i32.const 1) (local.get $ref))
            (then (call $reply (global.get $pend_call) (local.get $payload) (local.get $len) (i32.const 16))))
          (return (call $none))))
      ;; timer(id): answer the call that set it with "tock"
      (if (i32.eq (local.get $kind) (i32.const 6))
        (then
          (if (call $pend_take (i32.const 2) (local.get $ref))
            (then (call $reply (global.get $pend_call) (i32.const 1600) (i32.const 5) (i32.const 16))))
          (return (call $none))))
      ;; down(id): keep the payload
      (if (i32.eq (local.get $kind) (i32.const 4))
        (then
          (global.set $down_len (call $keep (i32.const 8192) (i32.const 8192) (local.get $payload) (local.get $len)))
          (return (call $none))))
      ;; exit: keep the payload and the sender
      (if (i32.eq (local.get $kind) (i32.const 5))
        (then
          (global.set $exit_len (call $keep (i32.const 16384) (i32.const 8192) (local.get $payload) (local.get $len)))
          (global.set $exit_sender_len (i32.const -1))
          (if (i32.and (local.get $has_sender) (i32.le_u (local.get $sender_len) (i32.const 1024)))
            (then
              (memory.copy (i32.const 24576) (local.get $sender) (local.get $sender_len))
              (global.set $exit_sender_len (local.get $sender_len))))
          (return (call $none))))
      ;; cast or call: a command
      (call $command (local.get $kind) (local.get $ref) (local.get $payload) (local.get $len)))

    (func $command (param $kind i32) (param $ref i64) (param $payload i32) (param $len i32) (result i32)
      (local $s i32) (local $n i32) (local $count i32) (local $t i32) (local $tl i32)
      (local $m i32) (local $ml i32) (local $e i32) (local $ms i64) (local $out i32)
      (call $mp_start (local.get $payload) (local.get $len))
      ;; ---- a str command ----
      (if (call $mp_is_str (call $mp_peek))
        (then
          (local.set $s (call $mp_str))
          (local.set $n (global.get $mp_len))
          (if (i32.eqz (call $mp_done)) (then (return (call $unknown (local.get $kind)))))
          (if (call $mp_eq (local.get $s) (local.get $n) (i32.const 1024) (i32.const 4))        ;; ping
            (then (return (call $answer (local.get $kind) (i32.const 1504) (i32.const 5)))))
          (if (call $mp_eq (local.get $s) (local.get $n) (i32.const 1056) (i32.const 4))        ;; self
            (then
              (call $self (i32.const 16))
              (return (call $answer_str (local.get $kind) (i32.load (i32.const 16)) (i32.load (i32.const 20))))))
          (if (call $mp_eq (local.get $s) (local.get $n) (i32.const 1088) (i32.const 3))        ;; now
            (then
              (local.set $out (call $alloc (i32.const 9)))
              (return (call $answer (local.get $kind) (local.get $out)
                        (i32.sub (call $mp_enc_uint (local.get $out) (call $now_ms)) (local.get $out))))))
          (if (call $mp_eq (local.get $s) (local.get $n) (i32.const 1120) (i32.const 3))        ;; log
            (then
              (call $log (i32.const 2) (i32.const 1472) (i32.const 17))                       ;; info
              (return (call $answer (local.get $kind) (i32.const 1632) (i32.const 3)))))
          (if (call $mp_eq (local.get $s) (local.get $n) (i32.const 1152) (i32.const 9))        ;; last-down
            (then
              (if (i32.lt_s (global.get $down_len) (i32.const 0))
                (then (return (call $answer (local.get $kind) (i32.const 1664) (i32.const 1)))))
              (return (call $answer (local.get $kind) (i32.const 8192) (global.get $down_len)))))
          (if (call $mp_eq (local.get $s) (local.get $n) (i32.const 1184) (i32.const 9))        ;; last-exit
            (then
              (if (i32.lt_s (global.get $exit_len) (i32.const 0))
                (then (return (call $answer (local.get $kind) (i32.const 1664) (i32.const 1)))))
              (return (call $answer (local.get $kind) (i32.const 16384) (global.get $exit_len)))))
          (if (call $mp_eq (local.get $s) (local.get $n) (i32.const 1216) (i32.const 16))       ;; last-exit-sender
            (then
              (if (i32.lt_s (global.get $exit_sender_len) (i32.const 0))
                (then (return (call $answer (local.get $kind) (i32.const 1664) (i32.const 1)))))
              (return (call $answer_str (local.get $kind) (i32.const 24576) (global.get $exit_sender_len)))))
          (return (call $unknown (local.get $kind)))))
      ;; ---- an array command: [name, args...] ----
      (if (i32.eqz (call $mp_is_array (call $mp_peek))) (then (return (call $unknown (local.get $kind)))))
      (local.set $count (call $mp_array))
      (local.set $s (call $mp_str))
      (local.set $n (global.get $mp_len))
      (if (i32.or (global.get $mp_err) (i32.lt_u (local.get $count) (i32.const 2)))
        (then (return (call $unknown (local.get $kind)))))

      ;; ["ask", target] / ["ask", target, msg]
      (if (call $mp_eq (local.get $s) (local.get $n) (i32.const 1248) (i32.const 3))
        (then
          (local.set $t (call $mp_str))
          (local.set $tl (global.get $mp_len))
          (local.set $m (i32.const 1536))                  ;; "ping"
          (local.set $ml (i32.const 5))
          (if (i32.ge_u (local.get $count) (i32.const 3))
            (then
              (local.set $m (global.get $mp_pos))
              (call $mp_skip)
              (local.set $ml (i32.sub (global.get $mp_pos) (local.get $m)))))
          (if (global.get $mp_err) (then (return (call $unknown (local.get $kind)))))
          (if (i32.eq (local.get $kind) (i32.const 1))
            (then
              (local.set $e (call $pend_free))
              (if (i32.eqz (local.get $e))
                (then (return (call $answer_error (local.get $kind) (i32.const 1760) (i32.const 22)))))))
          (call $request (local.get $t) (local.get $tl) (local.get $m) (local.get $ml) (i32.const 1000) (i32.const 16))
          (if (i32.load8_u (i32.const 16))
            (then (return (call $answer_error (local.get $kind) (i32.load (i32.const 24)) (i32.load (i32.const 28))))))
          (if (i32.eq (local.get $kind) (i32.const 1))
            (then (call $pend_put (local.get $e) (i32.const 1) (i64.load (i32.const 24)) (local.get $ref))))
          (return (call $none))))

      ;; ["after", ms] and ["cancel", ms]
      (if (i32.or (call $mp_eq (local.get $s) (local.get $n) (i32.const 1280) (i32.const 5))
                  (call $mp_eq (local.get $s) (local.get $n) (i32.const 1312) (i32.const 6)))
        (then
          (local.set $ms (call $mp_int))
          (if (global.get $mp_err) (then (return (call $unknown (local.get $kind)))))
          (local.set $t (i32.const 1))                     ;; 1: after, 0: cancel
          (if (i32.eq (local.get $n) (i32.const 6)) (then (local.set $t (i32.const 0))))
          (if (i32.and (local.get $t) (i32.eq (local.get $kind) (i32.const 1)))
            (then
              (local.set $e (call $pend_free))
              (if (i32.eqz (local.get $e))
                (then (return (call $answer_error (local.get $kind) (i32.const 1760) (i32.const 22)))))))
          (call $self (i32.const 16))
          (call $send_after (i32.load (i32.const 16)) (i32.load (i32.const 20)) (i32.const 1568) (i32.const 5)
                            (i32.wrap_i64 (local.get $ms)) (i32.const 16))
          (if (i32.load8_u (i32.const 16))
            (then (return (call $answer_error (local.get $kind) (i32.load (i32.const 24)) (i32.load (i32.const 28))))))
          (if (i32.eqz (local.get $t))
            (then
              (if (call $cancel_timer (i64.load (i32.const 24)))
                (then (return (call $answer (local.get $kind) (i32.const 1680) (i32.const 1)))))
              (return (call $answer (local.get $kind) (i32.const 1672) (i32.const 1)))))
          (if (i32.eq (local.get $kind) (i32.const 1))
            (then (call $pend_put (local.get $e) (i32.const 2) (i64.load (i32.const 24)) (local.get $ref))))
          (return (call $none))))

      ;; the rest take a str argument first
      (local.set $t (call $mp_str))
      (local.set $tl (global.get $mp_len))
      (if (global.get $mp_err) (then (return (call $unknown (local.get $kind)))))

      ;; ["spawn", component]: spawn with nil args
      (if (call $mp_eq (local.get $s) (local.get $n) (i32.const 1344) (i32.const 5))
        (then
          (call $spawn (local.get $t) (local.get $tl) (i32.const 1664) (i32.const 1) (i32.const 16))
          (if (i32.load8_u (i32.const 16))
            (then (return (call $answer_error (local.get $kind) (i32.load (i32.const 20)) (i32.load (i32.const 24))))))
          (return (call $answer_str (local.get $kind) (i32.load (i32.const 20)) (i32.load (i32.const 24))))))
      ;; ["monitor", target]
      (if (call $mp_eq (local.get $s) (local.get $n) (i32.const 1376) (i32.const 7))
        (then
          (call $monitor (local.get $t) (local.get $tl) (i32.const 16))
          (if (i32.load8_u (i32.const 16))
            (then (return (call $answer_error (local.get $kind) (i32.load (i32.const 24)) (i32.load (i32.const 28))))))
          (local.set $out (call $alloc (i32.const 9)))
          (return (call $answer (local.get $kind) (local.get $out)
                    (i32.sub (call $mp_enc_uint (local.get $out) (i64.load (i32.const 24))) (local.get $out))))))
      ;; ["link", target]
      (if (call $mp_eq (local.get $s) (local.get $n) (i32.const 1408) (i32.const 4))
        (then
          (call $link (local.get $t) (local.get $tl) (i32.const 16))
          (if (i32.load8_u (i32.const 16))
            (then (return (call $answer_error (local.get $kind) (i32.load (i32.const 20)) (i32.load (i32.const 24))))))
          (return (call $answer (local.get $kind) (i32.const 1632) (i32.const 3)))))
      ;; ["send", target, value]: the value's raw msgpack bytes
      (if (call $mp_eq (local.get $s) (local.get $n) (i32.const 1440) (i32.const 4))
        (then
          (if (i32.lt_u (local.get $count) (i32.const 3)) (then (return (call $unknown (local.get $kind)))))
          (local.set $m (global.get $mp_pos))
          (call $mp_skip)
          (local.set $ml (i32.sub (global.get $mp_pos) (local.get $m)))
          (if (global.get $mp_err) (then (return (call $unknown (local.get $kind)))))
          (call $send (local.get $t) (local.get $tl) (local.get $m) (local.get $ml) (i32.const 16))
          (if (i32.load8_u (i32.const 16))
            (then (return (call $answer_error (local.get $kind) (i32.load (i32.const 20)) (i32.load (i32.const 24))))))
          (return (call $answer (local.get $kind) (i32.const 1632) (i32.const 3)))))
      (call $unknown (local.get $kind)))

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
  (core instance $pinger (instantiate $Pinger
    (with "libc" (instance $libc))
    (with "host" (instance
      (export "self" (func $self))
      (export "send" (func $send))
      (export "request" (func $request))
      (export "send-after" (func $send-after))
      (export "cancel-timer" (func $cancel-timer))
      (export "spawn" (func $spawn))
      (export "link" (func $link))
      (export "monitor" (func $monitor))
      (export "log" (func $log))
      (export "now-ms" (func $now-ms))
      (export "reply" (func $reply))))))

  (func (export "init") (param "args" (list u8)) (result (result (error string)))
    (canon lift (core func $pinger "init") (memory $memory) (realloc $realloc) (post-return (core func $pinger "post"))))
  (func (export "handle") (param "msg" $envelope) (result (result (option (list u8)) (error string)))
    (canon lift (core func $pinger "handle") (memory $memory) (realloc $realloc) (post-return (core func $pinger "post"))))
  (func (export "snapshot") (result (list u8))
    (canon lift (core func $pinger "snapshot") (memory $memory) (post-return (core func $pinger "post"))))
  (func (export "upgrade") (param "from-version" string) (param "state" (list u8)) (result (result (error string)))
    (canon lift (core func $pinger "upgrade") (memory $memory) (realloc $realloc) (post-return (core func $pinger "post")))))
