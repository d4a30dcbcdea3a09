"""Performance benchmarks for airssys-actors.

``python -m benchmarks.core`` measures the runtime's core figures (spawn, send, call,
processes per node) against floors measured in the same run; ``python -m
benchmarks.profile_hot_path`` shows where the time of a send and a call goes.
See docs/benchmarks.md.
"""
