"""Bodies this process stored lately, so a byte-identical redelivery skips validation.

NewStore delivers at least once: a redelivery is usually the very same bytes, soon after. For
such a body the full path would parse, validate and translate it again only to find its slot
taken. Remembering where a body went (its slot and content hash, by the digest of its bytes)
lets intake ask the database one cheap question instead: is that slot still held by the same
content? The database stays the only judge: if the row is gone (a restored or emptied
database) or holds other content, the body takes the full path as if never seen.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import NamedTuple

# About 400 bytes an entry (a digest, a slot, a content hash and a handled event name, all of
# bounded size): 10,000 bodies cost ~4 MB and cover several minutes at full rate, far longer
# than NewStore takes to redeliver an event whose answer it missed.
CAPACITY = 10_000


class Stored(NamedTuple):
    slot: str
    content_hash: str
    name: str | None


def digest(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()


class RecentBodies:
    """A bounded map of body digest → where the body was stored; oldest entries go first."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[bytes, Stored] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> Stored | None:
        return self._entries.get(key)

    def remember(self, key: bytes, stored: Stored) -> None:
        with self._lock:
            self._entries[key] = stored
            if len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
