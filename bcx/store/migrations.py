"""Moving keys an older version named differently to their current names (``bcx migrate``).

Idempotent: a key already moved is left alone, so it can run at every install or upgrade.
A key is copied with DUMP/RESTORE (type, contents, TTL and a stream's consumer groups kept),
then the old one deleted; old and new names may sit in different Cluster slots, so this is not
one transaction. A run interrupted between the two steps is finished by the next: when both
exist with identical contents the old one is simply deleted. When both exist with different
contents (components of the new version wrote before the migration ran), rules are merged
into the new hash (the new wins on a clash) and history lists appended (the old entries are
the older ones); two event streams are never merged: the old one is reported and kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bcx.keys import Keys


@dataclass(frozen=True)
class Step:
    old: str
    new: str
    action: str  # "moved", "merged", "finished", "nothing", "kept: <why>"


def migrate(connection: Any, keys: Keys) -> list[Step]:
    """Move every renamed key; one :class:`Step` per rename, in order."""
    return [_move(connection, old, new) for old, new in keys.renamed()]


def _move(connection: Any, old: str, new: str) -> Step:
    if not connection.exists(old):
        return Step(old, new, "nothing")
    payload = connection.dump(old)
    if not connection.exists(new):
        ttl = connection.pttl(old)
        connection.restore(new, max(ttl, 0), payload)
        connection.delete(old)
        return Step(old, new, "moved")
    if connection.dump(new) == payload:
        connection.delete(old)
        return Step(old, new, "finished")
    kind = connection.type(old)
    if kind != connection.type(new):
        return Step(old, new, f"kept: {old} is a {kind}, {new} a {connection.type(new)}")
    if kind == "hash":
        for field, value in connection.hgetall(old).items():
            connection.hsetnx(new, field, value)
    elif kind == "list":
        items = connection.lrange(old, 0, -1)
        if items:
            connection.rpush(new, *items)
    else:
        undelivered = connection.xlen(old) if kind == "stream" else None
        return Step(old, new, f"kept: both exist ({kind}"
                    + (f", {undelivered} entries in the old one" if undelivered is not None
                       else "") + "); inspect and delete the old one by hand")
    connection.delete(old)
    return Step(old, new, "merged")
