"""Stable hashes of JSON-like values: the one canonical form behind every key.

Case keys, build keys, variant keys and the build cache's keys all hash `canonical_json`,
so a key depends on content only (not on key order, spacing or the process)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest(value: Any, n: int = 16) -> str:
    """sha256 of the canonical JSON, first n hex digits."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:n]
