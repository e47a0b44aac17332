"""Account data (`StreamingHistory_music_*.json`, `StreamingHistory<n>.json`, podcasts when
asked for): entries to staged rows, minute precision, names only."""

from __future__ import annotations

from sync.history_import.staged import (
    EPISODE_LIKE_MS,
    KIND_NAMED_EPISODE,
    KIND_NAMED_TRACK,
    SKIP_EXCLUDED,
    SKIP_NO_TRACK,
    SKIP_PODCAST,
    SKIP_SHORT,
    ExportFormatError,
    ParsedFile,
    ParseOptions,
    _bad_time,
    _ms,
    _Rows,
    ms_text,
    parse_time,
)
from sync.store.catalogue import placeholder


def _account(
    name: str, entries: list, options: ParseOptions, parsed: ParsedFile, podcast_file: bool
) -> None:
    """Account-data rows (`StreamingHistory_music_*`, and podcasts when asked for)."""
    rows = _Rows(parsed, same_if_ms_differs=False)  # minute precision: ms tells plays apart
    skipped = parsed.skipped
    min_ms = options.min_ms
    podcasts = options.include_podcasts
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
        if podcast_file or "episodeName" in e or "podcastName" in e:
            if not podcasts:
                skipped[SKIP_PODCAST] += 1
                continue
            track = e.get("episodeName")
            album = e.get("podcastName")
            artist = None
            kind = KIND_NAMED_EPISODE
            ref = placeholder("episode", album, track)
        else:
            track = e.get("trackName")
            artist = e.get("artistName")
            album = None
            kind = KIND_NAMED_TRACK
            ref = placeholder("track", artist, track)
        if not track:
            skipped[SKIP_NO_TRACK] += 1
            continue
        if kind == KIND_NAMED_TRACK and _looks_excluded(artist, ms, options, parsed):
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


def _looks_excluded(artist: object, ms: int, options: ParseOptions, parsed: ParsedFile) -> bool:
    """--exclude-show for an account-data row (counted as skipped); else count episode-likes."""
    if options.exclude_shows and type(artist) is str and artist.lower() in options.exclude_shows:
        parsed.skipped[SKIP_EXCLUDED] += 1
        return True
    if ms > EPISODE_LIKE_MS:
        parsed.episode_like += 1
    return False
