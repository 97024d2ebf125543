"""`ADObject`: what a cmdlet twin gets back from the directory, like the module's ADEntity."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


class ADObject(Mapping[str, Any]):
    """Properties by name, looked up case-insensitively as PowerShell does (`$u.lockedout` is
    `$u.LockedOut`). Keys keep the spelling the ActiveDirectory module uses, so `dict(obj)` is
    what `Get-ADUser ... | Format-List` would list."""

    __slots__ = ("_items", "_index")

    def __init__(self, items: Mapping[str, Any]) -> None:
        self._items = dict(items)
        self._index = {k.lower(): k for k in self._items}

    def __getitem__(self, name: str) -> Any:
        return self._items[self._index[name.lower()]]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"ADObject({self._items!r})"
