"""Bodies this process stored lately, so a byte-identical redelivery skips validation.

NewStore delivers at least once: a redelivery is usually the very same bytes, soon after. For
such a body the full path would parse, validate and translate it again only to find its slot
taken. Remembering where a body went (its slot, by the hash of its bytes) lets intake ask the
database one cheap question instead: does that slot still hold the same content? The database
stays the only judge: if the row is gone (a restored or emptied database) or holds other
content, the body takes the full path as if never seen.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

# About 300 bytes an entry (a content hash, a slot and a handled event name, all of bounded
# size): 10,000 bodies cost ~3 MB and cover several seconds at full rate, far longer than
# NewStore takes to redeliver an event whose answer it missed.
CAPACITY = 10_000


class Stored(NamedTuple):
    slot: str
    name: str | None
    """The event's name when handled, only for metrics labels."""


class RecentBodies:
    """A bounded map of body hash → where the body was stored; oldest entries go first.

    Used from the event loop only, so it needs no lock."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, Stored] = OrderedDict()

    def get(self, content_hash: str) -> Stored | None:
        return self._entries.get(content_hash)

    def remember(self, content_hash: str, stored: Stored) -> None:
        self._entries[content_hash] = stored
        if len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
