"""The ``airssys`` command: run a tree, inspect it, deploy new versions, run benchmarks.

It sits on top of both ``airssys_actors`` and ``supervisors``, which know nothing of it.
"""
