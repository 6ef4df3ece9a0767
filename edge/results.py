"""Typed results that the CLI prints with `--json` and the API returns: dataclasses that say themselves as
JSON. One mixin, so every result serialises the same way (nested dataclasses become dicts)."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any


class JsonResult:
    """Mixin for a dataclass result: `to_json()` is its fields as plain JSON-ready data."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]  # only mixed into dataclasses
