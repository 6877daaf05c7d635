"""Every Redis structure BCX keeps, one module each; the only code that issues Redis commands.

``ticks``: raw ticks and latest values. ``rollups``: OHLC roll-ups and watermarks.
``rules``: stored rules and rule states. ``errors``: which Redis errors are waited out and which
stop a component with the setting to fix.
"""

from __future__ import annotations

from bcx.store.rollups import RollupStore
from bcx.store.rules import RuleStore
from bcx.store.ticks import FIELDS, Store

__all__ = [
    "FIELDS",
    "RollupStore",
    "RuleStore",
    "Store",
]
