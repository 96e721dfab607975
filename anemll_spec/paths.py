"""anemll-spec's own cache folder: built packages (build.cache) and the charts' Vega
bundles (chart.render) live there, and `cache list|clear` manage both. Kept apart from
both stages so that the charts need no builder code to find it."""

from __future__ import annotations

import os
from pathlib import Path

ENV_CACHE = "ANEMLL_SPEC_CACHE"


def default_cache_dir() -> Path:
    """$ANEMLL_SPEC_CACHE, else $XDG_CACHE_HOME or ~/.cache, /anemll-spec."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "anemll-spec"
