"""Reading a user's recently-played window: as few requests as the data allows."""

from __future__ import annotations

from datetime import datetime

from sync.job.transform import SkipItem, parse_played_at
from sync.spotify.client import RECENTLY_PLAYED_LIMIT, SpotifyClient


def fetch_window(
    client: SpotifyClient,
    access_token: str,
    newest: datetime | None,
    max_tracks: int,
    who: str | None = None,
) -> tuple[list, bool]:
    """Read the recently-played window; return raw items and whether a gap is possible.

    The whole first page is always read (late plays can be older than the newest stored
    one); `next` is followed only while a page holds nothing but plays newer than `newest`:
    items come newest first, so once a page reaches the stored plays, older pages hold
    nothing new (and asking would cost every user an extra request every run).
    A gap is possible only when a full window never reached the stored plays, on any page.
    """
    items: list = []
    reached_stored = False
    first_full = False
    for index, page in enumerate(client.recently_played_pages(access_token, who=who)):
        page_items = page.get("items") or []
        items.extend(page_items)
        if index == 0:
            first_full = len(page_items) >= RECENTLY_PLAYED_LIMIT
        times = []
        for item in page_items:
            try:
                times.append(parse_played_at(item.get("played_at")))
            except (SkipItem, AttributeError):
                continue
        newer = [t for t in times if newest is None or t > newest]
        if len(newer) < len(times):
            reached_stored = True
        if not page_items or not newer or reached_stored or len(items) >= max_tracks:
            break
    possible_gap = newest is not None and first_full and not reached_stored
    return items[:max_tracks], possible_gap
