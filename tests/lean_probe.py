"""A spawned instance's start, as bench's instance processes make it (concurrency.
instance_backend), then coremltools' import: does torch come with it?"""

from __future__ import annotations

import sys


def child(lean: bool, conn) -> None:
    from anemll_spec.instance import _Job, instance_backend

    job = _Job("numpy", None, None, {}, None, progress=False, start_timeout_s=1.0, lean=lean)  # type: ignore[arg-type]
    instance_backend(job)
    import coremltools  # noqa: F401

    conn.send(sys.modules.get("torch") is not None)
