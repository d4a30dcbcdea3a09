"""What a component's instance allocates besides code: its linear memories and tables,
read from the component binary (the host gets no handle on a component instance's core
memories and tables at run time, so their number is known only from the binary).

Every core module the component embeds is read for the memories and tables it defines
(imported ones are another module's); a module counts once per ``instantiate`` of it
in its component (at least once), and a nested component's counts once per
instantiation of that component. Modules a component aliases or imports are not
counted (wit-component and componentize-py embed every module they instantiate).
"""

from __future__ import annotations

import attrs

#: What one table element is counted as: wasmtime stores a funcref table's elements as
#: one pointer each (8 bytes on a 64-bit host); externref elements take 4, counted as 8.
TABLE_ELEMENT_BYTES = 8


@attrs.frozen
class Table:
    minimum: int
    maximum: int | None


@attrs.frozen
class Layout:
    """The memories and tables one instance of a component creates."""

    memories: int
    tables: tuple[Table, ...]

    def table_bytes(self, table_elements: int | None) -> int | None:
        """The most its tables can take, each capped at ``table_elements`` elements
        (``Limits.table_elements``); None if a table can grow without bound."""
        total = 0
        for table in self.tables:
            caps = [c for c in (table.maximum, table_elements) if c is not None]
            if not caps:
                return None
            total += max(table.minimum, min(caps)) * TABLE_ELEMENT_BYTES
        return total


UNKNOWN = Layout(1, ())


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uleb(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7

    def limits(self) -> tuple[int, int | None]:
        flags = self.byte()
        minimum = self.uleb()
        maximum = self.uleb() if flags & 1 else None
        return minimum, maximum

    def sections(self):  # type: ignore[no-untyped-def]
        while self.pos < self.end:
            sid = self.byte()
            size = self.uleb()
            start = self.pos
            self.pos += size
            yield sid, start, start + size


def _core_module(data: bytes, start: int, end: int) -> Layout:
    r = _Reader(data, start + 8, end)  # magic and version
    memories = 0
    tables: list[Table] = []
    for sid, s, e in r.sections():
        sec = _Reader(data, s, e)
        if sid == 4:  # table section
            for _ in range(sec.uleb()):
                init_expr = data[sec.pos] == 0x40
                if init_expr:
                    sec.pos += 2  # 0x40 0x00, then the table type and an initialiser
                if sec.byte() in (0x63, 0x64):  # (ref null? heaptype)
                    sec.uleb()
                minimum, maximum = sec.limits()
                tables.append(Table(minimum, maximum))
                if init_expr:
                    break  # the expression's length is not encoded: stop reading here
        elif sid == 5:  # memory section
            memories += sec.uleb()
    return Layout(memories, tuple(tables))


def _component(data: bytes, start: int, end: int) -> Layout:
    r = _Reader(data, start + 8, end)
    modules: list[Layout] = []
    components: list[Layout] = []
    module_uses: list[int] = []
    component_uses: list[int] = []
    for sid, s, e in r.sections():
        if sid == 1:  # core module
            modules.append(_core_module(data, s, e))
            module_uses.append(0)
        elif sid == 4:  # nested component
            components.append(_component(data, s, e))
            component_uses.append(0)
        elif sid == 2:  # core instances
            sec = _Reader(data, s, e)
            for _ in range(sec.uleb()):
                if sec.byte() == 0x00:  # instantiate module idx with args
                    idx = sec.uleb()
                    if idx < len(module_uses):
                        module_uses[idx] += 1
                    for _ in range(sec.uleb()):
                        sec.pos += sec.uleb()  # name
                        sec.byte()  # 0x12: instance
                        sec.uleb()
                else:  # inline exports
                    for _ in range(sec.uleb()):
                        sec.pos += sec.uleb()
                        sec.byte()
                        sec.uleb()
        elif sid == 5:  # component instances
            sec = _Reader(data, s, e)
            for _ in range(sec.uleb()):
                if sec.byte() != 0x00:
                    break  # inline exports (nothing instantiated); stop reading here
                idx = sec.uleb()
                if idx < len(component_uses):
                    component_uses[idx] += 1
                for _ in range(sec.uleb()):
                    sec.pos += sec.uleb()  # name
                    if sec.byte() == 0x00:  # a core sort: one more byte
                        sec.byte()
                    sec.uleb()
    memories, tables = 0, []
    for layout, uses in [*zip(modules, module_uses, strict=True), *zip(components, component_uses, strict=True)]:
        memories += layout.memories * max(1, uses)
        tables.extend(layout.tables * max(1, uses))
    return Layout(memories, tuple(tables))


def measure(binary: bytes) -> Layout:
    """The layout of a component binary; :data:`UNKNOWN` (one memory, no table) if it
    cannot be read (it was validated by wasmtime already, so that means a construct this
    reader does not know)."""
    try:
        return _component(binary, 0, len(binary))
    except (IndexError, ValueError):
        return UNKNOWN
