"""The WASM host layer: the only part of airssys-actors that touches wasmtime."""
