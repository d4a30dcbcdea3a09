;; core_module: a plain core wasm module, not a component. It has functions named like the
;; world's exports, but loading it as a component must fail.
(module
  (memory (export "memory") 1)
  (func (export "init") (param i32 i32) (result i32)
    (i32.const 0))
  (func (export "handle") (param i32 i64 i32 i32 i32 i32 i32) (result i32)
    (i32.const 0))
  (func (export "snapshot") (result i32)
    (i32.const 0))
  (func (export "upgrade") (param i32 i32 i32 i32) (result i32)
    (i32.const 0)))
