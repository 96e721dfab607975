"""Transitional name of `anemll_spec.store.published` (the published results).

Only for modules that still import the old name: connection.py (helper L's) and two
chart tests. Import `anemll_spec.store.published`; delete this file once none do.
"""

from anemll_spec.store.published import (  # noqa: F401
    MODEL_WEIGHT_BYTES,
    PUBLISHED_CSV,
    PUBLISHED_DIR,
    QUERIES_DIR,
    STORE_DIR,
    fingerprint,
    published_rows,
    reload,
)
