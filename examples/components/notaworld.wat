;; notaworld: a valid component that exports only `init` (no handle, snapshot or upgrade),
;; so it does not implement the `process` world; loading it must be refused.
;; Same layout as echo.wat (docs/guests-wat.md), minus the host import it does not need.
(component
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

  (core module $NotAWorld
    (import "libc" "memory" (memory 1))
    (import "libc" "reset" (func $reset))
    ;; init(args) -> result<_, string>
    (func (export "init") (param i32 i32) (result i32)
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.const 0))
    (func (export "post") (param i32) (call $reset)))
  (core instance $main (instantiate $NotAWorld
    (with "libc" (instance $libc))))

  (func (export "init") (param "args" (list u8)) (result (result (error string)))
    (canon lift (core func $main "init") (memory $memory) (realloc $realloc) (post-return (core func $main "post")))))
