"""Every Redis structure BCX keeps, one module each; the only code that issues Redis commands.

``ticks``: raw ticks and latest values. ``errors``: which Redis errors are waited out and which
stop a component with the setting to fix.
"""

from __future__ import annotations

from bcx.store.ticks import FIELDS, Store

__all__ = ["FIELDS", "Store"]
