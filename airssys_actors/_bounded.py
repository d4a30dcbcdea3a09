"""Records a node keeps of its past (exit reasons, events, dead letters), bounded both in
count and in bytes: a count alone lets a hostile guest make each record as large as it
likes, so each record is weighed when it is added and the oldest go first when either
bound is passed."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

#: What a record costs beyond the text and bytes it holds (its object, its fields, the
#: container's slot), counted so that a byte budget also bounds many small records.
RECORD_OVERHEAD = 200


class BoundedLog(Generic[T]):
    """The last records added, at most ``capacity`` of them and ``max_bytes`` in all
    (``None``: no byte bound). The newest record is always kept."""

    def __init__(self, capacity: int, max_bytes: int | None) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        # Two deques rather than one of pairs: no tuple per record (a dead letter is
        # recorded for every message a crash strands).
        self._items: deque[T] = deque(maxlen=capacity)
        self._sizes: deque[int] = deque(maxlen=capacity)
        self.bytes = 0

    def append(self, item: T, size: int) -> None:
        items, sizes = self._items, self._sizes
        if sizes and len(sizes) == self.capacity:  # the usual case once full: the oldest goes
            self.bytes -= sizes[0]
        items.append(item)  # (each deque drops its oldest itself)
        sizes.append(size)
        self.bytes += size
        if self.max_bytes is not None and self.bytes > self.max_bytes:
            while self.bytes > self.max_bytes and len(sizes) > 1:
                items.popleft()
                self.bytes -= sizes.popleft()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items)

    def __getitem__(self, index: int) -> T:
        return self._items[index]

    def clear(self) -> None:
        self._items.clear()
        self._sizes.clear()
        self.bytes = 0


class BoundedMap(Generic[K, T]):
    """A mapping that keeps only its most recently added ``capacity`` entries and
    ``max_bytes`` of them in all, forgetting the oldest first."""

    def __init__(self, capacity: int, max_bytes: int | None) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._items: OrderedDict[K, tuple[T, int]] = OrderedDict()
        self.bytes = 0

    def put(self, key: K, value: T, size: int) -> None:
        items = self._items
        old = items.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        items[key] = (value, size)
        self.bytes += size
        if len(items) > self.capacity or (self.max_bytes is not None and self.bytes > self.max_bytes):
            while len(items) > self.capacity or (
                    self.max_bytes is not None and self.bytes > self.max_bytes and len(items) > 1):
                self.bytes -= items.popitem(last=False)[1][1]

    def get(self, key: K, default: T | None = None) -> T | None:
        entry = self._items.get(key)
        return default if entry is None else entry[0]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)
