;; wrong_types: exports init, handle, snapshot and upgrade by the right names, but `handle`
;; has the wrong type, func(x: u32) -> u32 (it returns x + 1), and `upgrade` returns
;; result<_, u32> instead of result<_, string>. Loading it as a process must be refused,
;; naming both. Otherwise the same as examples/components/echo.wat, without the host import.
;;
;; The layout below is the one every WAT guest in this folder uses (docs/guests-wat.md):
;;   1. the types and host interface of airssys:actor@0.1.0, imported as the WIT world says;
;;   2. a "libc" core module that owns linear memory and a bump allocator, instantiated
;;      first so that imports can be lowered with that memory;
;;   3. the guest's own core module, with the canonical ABI signatures of the exports;
;;   4. canon lift of init / handle / snapshot / upgrade.
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

  (core module $WrongTypes
    (import "libc" "memory" (memory 1))
    (import "libc" "reset" (func $reset))
    ;; init(args) -> result<_, string>
    (func (export "init") (param i32 i32) (result i32)
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.const 0))
    ;; handle(x: u32) -> u32: x + 1
    (func (export "handle") (param $x i32) (result i32)
      (i32.add (local.get $x) (i32.const 1)))
    ;; snapshot() -> list<u8>: empty
    (func (export "snapshot") (result i32)
      (i32.store (i32.const 0) (i32.const 0))
      (i32.store (i32.const 4) (i32.const 0))
      (i32.const 0))
    ;; upgrade(from-version, state) -> result<_, u32> (the wrong type)
    (func (export "upgrade") (param i32 i32 i32 i32) (result i32)
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.const 0))
    (func (export "post") (param i32) (call $reset)))
  (core instance $main (instantiate $WrongTypes
    (with "libc" (instance $libc))))

  (func (export "init") (param "args" (list u8)) (result (result (error string)))
    (canon lift (core func $main "init") (memory $memory) (realloc $realloc) (post-return (core func $main "post"))))
  (func (export "handle") (param "x" u32) (result u32)
    (canon lift (core func $main "handle")))
  (func (export "snapshot") (result (list u8))
    (canon lift (core func $main "snapshot") (memory $memory) (post-return (core func $main "post"))))
  (func (export "upgrade") (param "from-version" string) (param "state" (list u8)) (result (result (error u32)))
    (canon lift (core func $main "upgrade") (memory $memory) (realloc $realloc) (post-return (core func $main "post")))))
