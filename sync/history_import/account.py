"""Account data (`StreamingHistory_music_*.json`, `StreamingHistory<n>.json`, and the
`_podcast_`/`_audiobook_` files, whose plays become spoken rows): entries to staged rows,
minute precision, names only."""

from __future__ import annotations

from sync.history_import.staged import (
    EPISODE_LIKE_MS,
    KIND_NAMED_TRACK,
    SKIP_EXCLUDED,
    SKIP_NO_TRACK,
    SKIP_SHORT,
    SPOKEN_CHAPTER,
    SPOKEN_EPISODE,
    ExportFormatError,
    ParsedFile,
    ParseOptions,
    _bad_time,
    _ms,
    _Rows,
    _Spoken,
    ms_text,
    parse_time,
)
from sync.store.catalogue import placeholder


def _account(
    name: str, entries: list, options: ParseOptions, parsed: ParsedFile, spoken_kind: int = 0
) -> None:
    """Account-data rows; spoken_kind: a `_podcast_` (SPOKEN_EPISODE) or `_audiobook_`
    (SPOKEN_CHAPTER) file, whose plays are spoken rows (as are rows with their fields)."""
    rows = _Rows(parsed, same_if_ms_differs=False)  # minute precision: ms tells plays apart
    spoken = _Spoken(parsed, same_if_ms_differs=False)
    skipped = parsed.skipped
    min_ms = options.min_ms
    for index, e in enumerate(entries):
        if type(e) is not dict:
            raise ExportFormatError(name, "is not a JSON object", index + 1)
        end = e.get("endTime")
        try:
            at = round(parse_time(end).timestamp() * 1000)
        except (TypeError, ValueError):
            raise _bad_time(name, index, "endTime", end, "2024-05-06 18:43") from None
        ms = e.get("msPlayed")
        if type(ms) is not int or ms < 0:
            ms = _ms(ms, name, index, "msPlayed")
        kind = _spoken_kind(e, spoken_kind)
        if kind == SPOKEN_EPISODE:
            spoken.add(kind, None, e.get("podcastName"), e.get("episodeName"), at, ms, min_ms)
            continue
        if kind == SPOKEN_CHAPTER:
            spoken.add(kind, None, e.get("audiobookName"), e.get("chapterName"), at, ms, min_ms)
            continue
        track = e.get("trackName")
        artist = e.get("artistName")
        album = None
        kind = KIND_NAMED_TRACK
        ref = placeholder("track", artist, track)
        if not track:
            skipped[SKIP_NO_TRACK] += 1
            continue
        if _looks_excluded(artist, ms, options, parsed):
            continue
        if ms < min_ms:
            skipped[SKIP_SHORT] += 1
            continue
        ri = rows.by_ref.get(ref)
        if ri is None:
            ri = rows.ref(ref, kind, track, artist, album)
        text = end if len(end) == 16 and end[10] == " " else ms_text(at)
        first = rows.at.get(at)
        if first is not None:
            rows.shared(at, text, ms, ri, first)
            continue
        rows.at[at] = len(parsed.ms)
        rows.append(at, 0, text, ms, ri)


def _spoken_kind(e: dict, file_kind: int) -> int:
    """SPOKEN_EPISODE or SPOKEN_CHAPTER for a spoken row (by its file or its fields), else 0."""
    if file_kind:
        return file_kind
    if "episodeName" in e or "podcastName" in e:
        return SPOKEN_EPISODE
    if "chapterName" in e or "audiobookName" in e:
        return SPOKEN_CHAPTER
    return 0


def _looks_excluded(artist: object, ms: int, options: ParseOptions, parsed: ParsedFile) -> bool:
    """--exclude-show for an account-data row (counted as skipped); else count episode-likes."""
    if options.exclude_shows and type(artist) is str and artist.lower() in options.exclude_shows:
        parsed.skipped[SKIP_EXCLUDED] += 1
        return True
    if ms > EPISODE_LIKE_MS:
        parsed.episode_like += 1
    return False
