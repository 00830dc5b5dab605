"""``backdrill unlock SCOPE``: remove a lock that is provably stale, or any with ``force``.

Stale means what a run would take over by itself (:func:`backdrill.repository.lockinfo.is_stale`):
expired, or held by a process of this host that no longer exists. Anything else (a
live lock of another host, a forged expiry far in the future, a foreign object) needs
``--force``: only the operator knows that run is gone. The object is deleted only if it
is still the one judged.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

from backdrill.repository.layout import LOCKS_ROOT, lock_key, lock_scope_of
from backdrill.repository.lockinfo import Holder, is_stale, shown, valid_scope
from backdrill.repository.locks import read_holder
from backdrill.runtime.errors import LockHeld, NotFound, UsageError
from backdrill.runtime.timeutil import utcnow
from backdrill.storage.base import Storage

log = logging.getLogger(__name__)
_LISTED = 20


@dataclass(frozen=True)
class Unlocked:
    scope: str
    holder: Holder
    why: str


def unlock(storage: Storage, scope: str, *, force: bool, host: str | None = None) -> Unlocked:
    if not valid_scope(scope):
        raise UsageError(
            f"{shown(scope)!r} is not a lock scope",
            hint="for example db-odoo, files-odoo or prune",
        )
    key = lock_key(scope)
    holder = read_holder(storage, key)
    if holder is None:
        raise NotFound(f"no lock {scope}", hint=f"locks held: {_held(storage)}")
    why = is_stale(holder, utcnow(), host or socket.gethostname())
    if why is None:
        if not force:
            raise LockHeld(
                f"{scope} is held by {holder.describe()}; not removed",
                hint="--force removes it anyway, once you know that run is gone",
            )
        why = "--force"
    if read_holder(storage, key) != holder:
        raise LockHeld(f"{scope} changed while it was judged; not removed", hint="run it again")
    storage.delete(key)
    log.warning("removed the lock %s (%s) held by %s", key, why, holder.describe())
    return Unlocked(scope, holder, why)


def _held(storage: Storage) -> str:
    names = []
    for info in storage.list_objects(LOCKS_ROOT):
        name = lock_scope_of(info.key)
        if name is not None and valid_scope(name):
            names.append(name)
        if len(names) > _LISTED:
            return ", ".join(names[:_LISTED]) + ", …"
    return ", ".join(names) or "none"
