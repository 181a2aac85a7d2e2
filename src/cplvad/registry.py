"""Extension points by name: a setting's values mapped to implementations, filled by registration.

The built-in choices register themselves the way an extension does (``@REGISTRY.register("name")``), so a
new CAR rule, branch, supervision route or learning-rate schedule is added without editing the code that
uses it or the config schema: the config checks its value against the registry (``check``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from cplvad.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """``name -> T`` for one setting; ``setting`` and ``what`` name it in errors."""

    def __init__(self, setting: str, what: str):
        self.setting = setting
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name")`` above a function (or ``REGISTRY.register("name")(obj)``)."""

        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.what} {name!r} is already registered ({self.setting})")
            self._items[name] = item
            return item

        return add

    def unregister(self, name: str) -> None:
        """Remove a registration (e.g. a test's toy one)."""
        del self._items[name]

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def __getitem__(self, name: str) -> T:
        if name not in self._items:
            raise ConfigError(f"{self.setting} = {name!r}: {self._unknown()}")
        return self._items[name]

    def check(self, name: str) -> str:
        """``name`` if registered, else a ValueError listing the registered names (for config validators)."""
        if name not in self._items:
            raise ValueError(self._unknown())
        return name

    def _unknown(self) -> str:
        return f"not a registered {self.what}; registered: {', '.join(self._items) or 'none'}"
