;; counter_picky: counter.wat (v1) whose upgrade takes only small counts, for tests of a
;; change that fails at one process among several (the others' states are accepted).
;;
;;   init, handle, snapshot   as counter.wat
;;   upgrade(_, s)   like counter.wat's, but a count of 1000 or more -> err("count too large"),
;;                   count unchanged
;;
;; Memory below the heap base (65536) as counter.wat; "count too large" is at 1248.
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

  (core module $Counter
    (import "libc" "memory" (memory 1))
    (import "libc" "reset" (func $reset))
    (data (i32.const 1024) "bad args")
    (data (i32.const 1056) "unknown message")
    (data (i32.const 1088) "bad state")
    (data (i32.const 1120) "start")
    (data (i32.const 1152) "incr")
    (data (i32.const 1184) "get")
    (data (i32.const 1216) "count")
    (data (i32.const 1248) "count too large")
    (global $count (mut i64) (i64.const 0))

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

    ;; init(args) -> result<_, string>
    (func (export "init") (param $args i32) (param $len i32) (result i32)
      (local $pairs i32) (local $start i64) (local $key i32)
      (if (i32.eqz (local.get $len))                      ;; no args at all: like nil
        (then (global.set $count (i64.const 0)) (return (call $ok))))
      (call $mp_start (local.get $args) (local.get $len))
      (if (i32.eq (call $mp_peek) (i32.const 0xc0))       ;; nil
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
                  (if (call $mp_eq (local.get $key) (global.get $mp_len) (i32.const 1120) (i32.const 5))
                    (then (local.set $start (call $mp_int)))   ;; "start": must be an int
                    (else (call $mp_skip))))
                (else (call $mp_skip) (call $mp_skip)))      ;; a key that is not a str
              (br $next)))))
      (if (i32.eqz (call $mp_done)) (then (return (call $err (i32.const 1024) (i32.const 8)))))
      (global.set $count (local.get $start))
      (call $ok))

    ;; handle(kind, kind-value, sender?, sender-ptr, sender-len, payload-ptr, payload-len)
    ;;   -> result<option<list<u8>>, string>, written at offset 0
    (func (export "handle") (param $kind i32) (param $ref i64) (param $has_sender i32)
          (param $sender i32) (param $sender_len i32) (param $payload i32) (param $len i32) (result i32)
      (local $delta i64) (local $s i32)
      (i32.store8 (i32.const 0) (i32.const 0))            ;; ok
      (i32.store8 (i32.const 4) (i32.const 0))            ;; none
      (if (i32.gt_u (local.get $kind) (i32.const 1))      ;; not a cast or a call: ignore
        (then (return (i32.const 0))))
      (call $mp_start (local.get $payload) (local.get $len))
      (local.set $delta (call $mp_int))
      (if (i32.eqz (call $mp_done))
        (then
          (call $mp_start (local.get $payload) (local.get $len))
          (local.set $s (call $mp_str))
          (if (i32.eqz (call $mp_done)) (then (return (call $err (i32.const 1056) (i32.const 15)))))
          (if (call $mp_eq (local.get $s) (global.get $mp_len) (i32.const 1152) (i32.const 4))
            (then (local.set $delta (i64.const 1)))
            (else (if (call $mp_eq (local.get $s) (global.get $mp_len) (i32.const 1184) (i32.const 3))
              (then (local.set $delta (i64.const 0)))
              (else (return (call $err (i32.const 1056) (i32.const 15)))))))))
      (global.set $count (i64.add (global.get $count) (local.get $delta)))
      (if (i32.eq (local.get $kind) (i32.const 1))        ;; call: some(count)
        (then
          (i32.store8 (i32.const 4) (i32.const 1))
          (i32.store (i32.const 8) (i32.const 64))
          (i32.store (i32.const 12) (i32.sub (call $mp_enc_int (i32.const 64) (global.get $count)) (i32.const 64)))))
      (i32.const 0))

    ;; snapshot() -> list<u8>: the count as a msgpack int
    (func (export "snapshot") (result i32)
      (i32.store (i32.const 0) (i32.const 64))
      (i32.store (i32.const 4) (i32.sub (call $mp_enc_int (i32.const 64) (global.get $count)) (i32.const 64)))
      (i32.const 0))

    ;; upgrade(from-version, state) -> result<_, string>
    (func (export "upgrade") (param $from i32) (param $from_len i32) (param $state i32) (param $len i32) (result i32)
      (local $v i64) (local $pairs i32) (local $key i32) (local $found i32)
      (call $mp_start (local.get $state) (local.get $len))
      (local.set $v (call $mp_int))
      (if (i32.eqz (call $mp_done))
        (then                                             ;; not an int: a map with "count"?
          (call $mp_start (local.get $state) (local.get $len))
          (local.set $pairs (call $mp_map))
          (block $done
            (loop $next
              (br_if $done (i32.or (i32.eqz (local.get $pairs)) (global.get $mp_err)))
              (local.set $pairs (i32.sub (local.get $pairs) (i32.const 1)))
              (if (call $mp_is_str (call $mp_peek))
                (then
                  (local.set $key (call $mp_str))
                  (if (call $mp_eq (local.get $key) (global.get $mp_len) (i32.const 1216) (i32.const 5))
                    (then (local.set $v (call $mp_int)) (local.set $found (i32.const 1)))   ;; "count": an int
                    (else (call $mp_skip))))
                (else (call $mp_skip) (call $mp_skip)))      ;; a key that is not a str
              (br $next)))
          (if (i32.eqz (i32.and (call $mp_done) (local.get $found)))
            (then (return (call $err (i32.const 1088) (i32.const 9)))))))
      (if (i64.ge_s (local.get $v) (i64.const 1000))
        (then (return (call $err (i32.const 1248) (i32.const 15)))))
      (global.set $count (local.get $v))
      (call $ok))
    (func (export "post") (param i32) (call $reset)))
  (core instance $counter (instantiate $Counter
    (with "libc" (instance $libc))))

  (func (export "init") (param "args" (list u8)) (result (result (error string)))
    (canon lift (core func $counter "init") (memory $memory) (realloc $realloc) (post-return (core func $counter "post"))))
  (func (export "handle") (param "msg" $envelope) (result (result (option (list u8)) (error string)))
    (canon lift (core func $counter "handle") (memory $memory) (realloc $realloc) (post-return (core func $counter "post"))))
  (func (export "snapshot") (result (list u8))
    (canon lift (core func $counter "snapshot") (memory $memory) (post-return (core func $counter "post"))))
  (func (export "upgrade") (param "from-version" string) (param "state" (list u8)) (result (result (error string)))
    (canon lift (core func $counter "upgrade") (memory $memory) (realloc $realloc) (post-return (core func $counter "post")))))
