"""Model tags `name:version`, as BentoML spells them, and generated versions."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

from kubento import contract

# Each part of a tag; the same rule as BentoML's, so tags carry over.
PART_PATTERN = re.compile(rf"^{contract.MODEL_TAG_PART}$")
MAX_PART_LENGTH = contract.MAX_MODEL_TAG_PART
LATEST = "latest"
_BASE32 = "0123456789abcdefghijklmnopqrstuv"


class BadTag(ValueError):
    """A tag that does not parse: the message names it and says what is allowed."""


def _check_part(tag: str, kind: str, part: str) -> str:
    if len(part) > MAX_PART_LENGTH or not PART_PATTERN.match(part):
        raise BadTag(
            f"invalid model tag {tag!r}: the {kind} {part!r} must be lowercase letters, digits, "
            f"'-', '.' and '_', start and end with a letter or digit, and be at most "
            f"{MAX_PART_LENGTH} characters"
        )
    return part


@dataclass(frozen=True, order=True)
class Tag:
    """`name:version`; `version` is None for "whatever is latest"."""

    name: str
    version: str | None = None

    @classmethod
    def parse(cls, tag: str | Tag) -> Tag:
        """`"name"`, `"name:latest"` (both: version None) or `"name:version"`."""
        if isinstance(tag, Tag):
            return tag
        if not isinstance(tag, str):
            raise BadTag(f"a model tag is a string 'name:version', got {tag!r}")
        name, sep, version = tag.partition(":")
        _check_part(tag, "name", name)
        if not sep or version == LATEST:
            return cls(name)
        return cls(name, _check_part(tag, "version", version))

    def __str__(self) -> str:
        return f"{self.name}:{self.version or LATEST}"


def new_version(now_ns: int | None = None) -> str:
    """A version that sorts by creation time (13 base32 digits of ns), plus 4 random digits
    so two saves in the same nanosecond, or on two machines, still differ."""
    value = time.time_ns() if now_ns is None else now_ns
    stamp = "".join(_BASE32[(value >> (5 * i)) & 31] for i in reversed(range(13)))
    noise = int.from_bytes(os.urandom(3), "big")
    return stamp + "".join(_BASE32[(noise >> (5 * i)) & 31] for i in range(4))
