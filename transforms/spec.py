"""Errors raised while turning config mappings into the specs that transforms use.

`path` is the dotted key path relative to the mapping handed in (e.g. `[2].query`);
`pipeline/config.py` prefixes it with the enclosing key and adds the YAML line.
"""
from __future__ import annotations


class SpecError(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class SpecErrors(Exception):
    """Several SpecErrors at once, so a user sees every problem in one go."""

    def __init__(self, errors: list[SpecError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors
