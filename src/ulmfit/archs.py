"""The names of the registered encoder architectures and of their model presets, without importing torch.

`ulmfit.settings` offers and checks them as `choices` (so `ulmfit --help` and settings made in Python or a
run config stay light); `ulmfit.models.registry.register` / `unregister` keep them equal to the registered
specs, and nothing else should change them. The built-ins are named here because settings are checked
before any model module is imported (a test keeps these names equal to the registry's).
"""

from __future__ import annotations

from collections.abc import Iterator


class Names:
    """An ordered set of names, usable wherever a `choices` container is (the settings' checks, argparse)."""

    def __init__(self, *names: str):
        self._names = dict.fromkeys(names)

    def add(self, name: str) -> None:
        self._names[name] = None

    def discard(self, name: str) -> None:
        self._names.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names))

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"Names({', '.join(map(repr, self))})"


ARCHS = Names("awd_lstm", "qrnn")  # every registered architecture (ulmfit.models.registry)
PRESETS = Names("paper", "medium", "small", "cpu", "tiny")  # every preset name of a registered architecture
