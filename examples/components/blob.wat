;; blob: a byte blob of configurable size as the whole state, for benchmarks of hot code
;; upgrades (state migration through snapshot -> upgrade).
;;
;;   init(args)      args is msgpack nil (an empty blob) or a map {"size": int, ...} (other
;;                   keys are ignored; a map without "size" is an empty blob); empty args
;;                   count as nil. The blob gets n bytes, byte i = i mod 251. A size below 0
;;                   or above 8 MiB (8388608), or anything else -> err("bad args"); memory
;;                   that cannot grow -> err("out of memory"). Either error keeps the old blob.
;;   handle          cast or call with payload
;;                     "size"  reply the blob length as a msgpack int
;;                     "sum"   reply (the sum of all blob bytes) mod 2^32 as a msgpack int
;;                     "ping"  reply "pong"
;;                     int n   reply n (re-encoded in its shortest form)
;;                   a call is answered, a cast is not (and does no work); any other payload
;;                   -> err("unknown message"). Envelopes of other kinds are ignored.
;;   snapshot        the blob bytes, raw (not msgpack)
;;   upgrade(_, s)   the bytes s (any length up to 8 MiB) become the blob; longer ->
;;                   err("state too large"), blob unchanged. from-version is not looked at.
;;
;; Memory:
;;   0..16        result area of every export
;;   48..64       zero bytes the msgpack reader falls back on
;;   64..80       the encoded reply
;;   1024..       constant strings, 32 bytes apart
;;   65536..      the blob ($blob_len bytes, at most 8 MiB), at a fixed address
;;   heap base..  the bump heap: args, payloads and the upgrade state, reset after every
;;                export. The heap base is not fixed here: it sits just above the blob,
;;                at 65536 + $blob_len rounded up to 8 (65536 while the blob is empty).
;; Unlike the other guests, $Libc keeps the heap base in a global that `set_base` moves, so
;; the per-call reset never hands out the blob's bytes and the blob needs no copy in
;; snapshot. Memory grows only as far as the blob and the largest call need (init grows it
;; for the blob; realloc grows it for what the host passes in). upgrade's state arrives on
;; the heap, above the old blob, and is moved down to 65536 with memory.copy (which allows
;; overlap); then the heap base moves to just above the new blob. Memory never shrinks.
;; Otherwise the layout of echo.wat (docs/guests-wat.md); blob calls no host function, so
;; it imports no host interface.
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

  ;; Memory and a bump allocator; `reset` frees everything above the heap base, which
  ;; `set_base` moves (the blob lives below it).
  (core module $Libc
    (memory (export "memory") 2)
    (global $base (mut i32) (i32.const 65536))
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
    (func (export "reset") (global.set $top (global.get $base)))
    ;; the heap base from now on; takes effect at the next reset (every export's post-return)
    (func (export "set_base") (param $p i32) (global.set $base (local.get $p))))
  (core instance $libc (instantiate $Libc))
  (alias core export $libc "memory" (core memory $memory))
  (alias core export $libc "realloc" (core func $realloc))

  (core module $Blob
    (import "libc" "memory" (memory 1))
    (import "libc" "reset" (func $reset))
    (import "libc" "set_base" (func $set_base (param i32)))
    (data (i32.const 1024) "bad args")
    (data (i32.const 1056) "unknown message")
    (data (i32.const 1088) "state too large")
    (data (i32.const 1120) "out of memory")
    (data (i32.const 1152) "size")
    (data (i32.const 1184) "sum")
    (data (i32.const 1216) "ping")
    (data (i32.const 1248) "\a4pong")                    ;; msgpack "pong"
    (global $blob_len (mut i32) (i32.const 0))            ;; the blob is at 65536

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

    ;; result<_, string> at 0: ok, or err with the constant string at p
    (func $ok (result i32)
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.const 0))
    (func $err (param $p i32) (param $n i32) (result i32)
      (i32.store8 (i32.const 0) (i32.const 1))
      (i32.store (i32.const 4) (local.get $p))
      (i32.store (i32.const 8) (local.get $n))
      (i32.const 0))
    ;; result<option<list<u8>>, string> at 0: ok(some(the n bytes at p)) for a call,
    ;; ok(none) for anything else
    (func $answer (param $kind i32) (param $p i32) (param $n i32) (result i32)
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.store8 (i32.const 4) (i32.const 0))
      (if (i32.eq (local.get $kind) (i32.const 1))
        (then
          (i32.store8 (i32.const 4) (i32.const 1))
          (i32.store (i32.const 8) (local.get $p))
          (i32.store (i32.const 12) (local.get $n))))
      (i32.const 0))
    ;; answer a call with v as a msgpack int (encoded at 64)
    (func $answer_int (param $kind i32) (param $v i64) (result i32)
      (call $answer (local.get $kind) (i32.const 64)
                    (i32.sub (call $mp_enc_int (i32.const 64) (local.get $v)) (i32.const 64))))
    ;; the blob now has n bytes (already in place at 65536): the heap starts above them
    (func $set_blob (param $n i32)
      (global.set $blob_len (local.get $n))
      (call $set_base (i32.and (i32.add (i32.add (i32.const 65536) (local.get $n)) (i32.const 7))
                               (i32.const -8))))
    ;; (sum of the blob's bytes) mod 2^32
    (func $sum (result i32)
      (local $p i32) (local $end i32) (local $s i32)
      (local.set $p (i32.const 65536))
      (local.set $end (i32.add (i32.const 65536) (global.get $blob_len)))
      (block $done
        (loop $next
          (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
          (local.set $s (i32.add (local.get $s) (i32.load8_u (local.get $p))))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (br $next)))
      (local.get $s))

    ;; init(args) -> result<_, string>
    (func (export "init") (param $args i32) (param $len i32) (result i32)
      (local $pairs i32) (local $size i64) (local $key i32) (local $n i32) (local $i i32) (local $step i32)
      (local $need i32) (local $have i32)
      (if (i32.gt_u (local.get $len) (i32.const 0))       ;; no args at all: like nil
        (then
          (call $mp_start (local.get $args) (local.get $len))
          (if (i32.eq (call $mp_peek) (i32.const 0xc0))   ;; nil
            (then (drop (call $mp_take (i32.const 1))))
            (else
              (local.set $pairs (call $mp_map))
              (block $done
                (loop $next
                  (br_if $done (i32.or (i32.eqz (local.get $pairs)) (global.get $mp_err)))
                  (local.set $pairs (i32.sub (local.get $pairs) (i32.const 1)))
                  (if (call $mp_is_str (call $mp_peek))
                    (then
                      (local.set $key (call $mp_str))
                      (if (call $mp_eq (local.get $key) (global.get $mp_len) (i32.const 1152) (i32.const 4))
                        (then (local.set $size (call $mp_int)))   ;; "size": must be an int
                        (else (call $mp_skip))))
                    (else (call $mp_skip) (call $mp_skip)))  ;; a key that is not a str
                  (br $next)))))
          (if (i32.eqz (call $mp_done)) (then (return (call $err (i32.const 1024) (i32.const 8)))))))
      (if (i64.gt_u (local.get $size) (i64.const 8388608))   ;; negative sizes are huge unsigned
        (then (return (call $err (i32.const 1024) (i32.const 8)))))
      (local.set $n (i32.wrap_i64 (local.get $size)))
      ;; grow memory to hold 65536 + n bytes (the args, above, are no longer needed)
      (local.set $need (i32.add (i32.const 65536) (local.get $n)))
      (local.set $have (i32.mul (memory.size) (i32.const 65536)))
      (if (i32.gt_u (local.get $need) (local.get $have))
        (then
          (if (i32.eq (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $need) (local.get $have)) (i32.const 65535))
                                              (i32.const 16)))
                      (i32.const -1))
            (then (return (call $err (i32.const 1120) (i32.const 13)))))))
      ;; the first 251 bytes (or fewer) by hand, then double the filled prefix with
      ;; memory.copy: it stays a whole number of 251-byte periods until the last copy
      (block $done
        (loop $next
          (br_if $done (i32.ge_u (local.get $i) (select (local.get $n) (i32.const 251)
                                                        (i32.lt_u (local.get $n) (i32.const 251)))))
          (i32.store8 (i32.add (i32.const 65536) (local.get $i)) (local.get $i))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $next)))
      (block $done
        (loop $next
          (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
          (local.set $step (select (local.get $i) (i32.sub (local.get $n) (local.get $i))
                                   (i32.lt_u (local.get $i) (i32.sub (local.get $n) (local.get $i)))))
          (memory.copy (i32.add (i32.const 65536) (local.get $i)) (i32.const 65536) (local.get $step))
          (local.set $i (i32.add (local.get $i) (local.get $step)))
          (br $next)))
      (call $set_blob (local.get $n))
      (call $ok))

    ;; handle(kind, kind-value, sender?, sender-ptr, sender-len, payload-ptr, payload-len)
    ;;   -> result<option<list<u8>>, string>, written at offset 0
    (func (export "handle") (param $kind i32) (param $ref i64) (param $has_sender i32)
          (param $sender i32) (param $sender_len i32) (param $payload i32) (param $len i32) (result i32)
      (local $v i64) (local $s i32)
      (if (i32.gt_u (local.get $kind) (i32.const 1))      ;; not a cast or a call: ignore
        (then (return (call $answer (i32.const 0) (i32.const 0) (i32.const 0)))))
      (call $mp_start (local.get $payload) (local.get $len))
      (local.set $v (call $mp_int))
      (if (call $mp_done)                                 ;; an int: echo it
        (then (return (call $answer_int (local.get $kind) (local.get $v)))))
      (call $mp_start (local.get $payload) (local.get $len))
      (local.set $s (call $mp_str))
      (if (i32.eqz (call $mp_done)) (then (return (call $err (i32.const 1056) (i32.const 15)))))
      (if (call $mp_eq (local.get $s) (global.get $mp_len) (i32.const 1216) (i32.const 4))     ;; ping
        (then (return (call $answer (local.get $kind) (i32.const 1248) (i32.const 5)))))
      (if (call $mp_eq (local.get $s) (global.get $mp_len) (i32.const 1152) (i32.const 4))     ;; size
        (then (return (call $answer_int (local.get $kind) (i64.extend_i32_u (global.get $blob_len))))))
      (if (call $mp_eq (local.get $s) (global.get $mp_len) (i32.const 1184) (i32.const 3))     ;; sum
        (then
          (if (i32.ne (local.get $kind) (i32.const 1))    ;; a cast: nobody would see it
            (then (return (call $answer (i32.const 0) (i32.const 0) (i32.const 0)))))
          (return (call $answer_int (local.get $kind) (i64.extend_i32_u (call $sum))))))
      (call $err (i32.const 1056) (i32.const 15)))

    ;; snapshot() -> list<u8>: the blob itself, in place
    (func (export "snapshot") (result i32)
      (i32.store (i32.const 0) (i32.const 65536))
      (i32.store (i32.const 4) (global.get $blob_len))
      (i32.const 0))

    ;; upgrade(from-version, state) -> result<_, string>
    (func (export "upgrade") (param $from i32) (param $from_len i32) (param $state i32) (param $len i32) (result i32)
      (if (i32.gt_u (local.get $len) (i32.const 8388608))
        (then (return (call $err (i32.const 1088) (i32.const 15)))))
      ;; the state lies on the heap, above the old blob: move it down (overlap is fine)
      (memory.copy (i32.const 65536) (local.get $state) (local.get $len))
      (call $set_blob (local.get $len))
      (call $ok))
    (func (export "post") (param i32) (call $reset)))
  (core instance $blob (instantiate $Blob
    (with "libc" (instance $libc))))

  (func (export "init") (param "args" (list u8)) (result (result (error string)))
    (canon lift (core func $blob "init") (memory $memory) (realloc $realloc) (post-return (core func $blob "post"))))
  (func (export "handle") (param "msg" $envelope) (result (result (option (list u8)) (error string)))
    (canon lift (core func $blob "handle") (memory $memory) (realloc $realloc) (post-return (core func $blob "post"))))
  (func (export "snapshot") (result (list u8))
    (canon lift (core func $blob "snapshot") (memory $memory) (post-return (core func $blob "post"))))
  (func (export "upgrade") (param "from-version" string) (param "state" (list u8)) (result (result (error string)))
    (canon lift (core func $blob "upgrade") (memory $memory) (realloc $realloc) (post-return (core func $blob "post")))))
