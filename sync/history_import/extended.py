"""Extended streaming history (`Streaming_History_Audio_*.json`, `endsong_*.json` and the
video files): entries to staged rows, episodes and chapters to spoken rows (kept apart
from music). The hot loop of an import: keep it lean."""

from __future__ import annotations

from datetime import UTC, datetime

from sync.history_import.staged import (
    KIND_NAMED_TRACK,
    KIND_TRACK,
    SKIP_INCOGNITO,
    SKIP_NO_TRACK,
    SKIP_SHORT,
    SKIP_VIDEO,
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
)
from sync.store.catalogue import placeholder


def _is_episode(e: dict) -> bool:
    return bool(e.get("spotify_episode_uri") or e.get("episode_name"))


def _is_audiobook(e: dict) -> bool:
    return bool(
        e.get("audiobook_uri") or e.get("audiobook_chapter_uri") or e.get("audiobook_title")
    )


def _extended(
    name: str, entries: list, options: ParseOptions, parsed: ParsedFile, video: bool = False
) -> None:
    """Extended history rows; video: a video file without --include-video (its rows but
    episodes and chapters are skipped video). Hot loop (a million entries): keep it lean."""
    rows = _Rows(parsed, same_if_ms_differs=True)
    spoken = _Spoken(parsed, same_if_ms_differs=True)
    by_ref, seen_at, skipped = rows.by_ref, rows.at, parsed.skipped
    min_ms = options.min_ms
    fromiso = datetime.fromisoformat
    ts_ms, offsets, texts, mss, refs = (parsed.ts_ms, parsed.offset_ms, parsed.at_text,
                                        parsed.ms, parsed.ref_idx)  # fmt: skip
    for index, e in enumerate(entries):
        if type(e) is not dict:
            raise ExportFormatError(name, "is not a JSON object", index + 1)
        if video and not (_is_episode(e) or _is_audiobook(e)):
            skipped[SKIP_VIDEO] += 1
            continue
        ts = e.get("ts")
        try:
            moment = fromiso(ts)
        except (TypeError, ValueError):
            raise _bad_time(name, index, "ts", ts, "2024-05-06T18:43:21Z") from None
        ms = e.get("ms_played")
        if type(ms) is not int or ms < 0:
            ms = _ms(ms, name, index, "ms_played")
        uri = e.get("spotify_track_uri")
        if uri:
            kind = KIND_TRACK
        elif _is_episode(e) or _is_audiobook(e):
            _spoken_row(spoken, e, moment, ms, min_ms)
            continue
        elif track := e.get("master_metadata_track_name"):
            kind = KIND_NAMED_TRACK  # no URI but names (local files, withdrawn tracks)
            uri = placeholder("track", e.get("master_metadata_album_artist_name"), track)
        else:
            skipped[SKIP_NO_TRACK] += 1
            continue
        if e.get("incognito_mode") is True:
            skipped[SKIP_INCOGNITO] += 1
            continue
        if ms < min_ms:
            skipped[SKIP_SHORT] += 1
            continue
        ri = by_ref.get(uri)
        if ri is None:  # once per distinct track of the file
            ri = _new_ref(rows, e, uri, kind)
        at = round((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)
        first = seen_at.get(at)
        if first is not None:
            rows.shared(at, ts, ms, ri, first)
            continue
        seen_at[at] = len(mss)
        ts_ms.append(at)
        offsets.append(0)
        texts.append(ts if len(ts) == 20 and ts[19] == "Z" else ms_text(at))
        mss.append(ms)
        refs.append(ri)


def _spoken_row(spoken: _Spoken, e: dict, moment: datetime, ms: int, min_ms: int) -> None:
    """An episode or chapter play: skipped by the rules of music, or a spoken row."""
    at = round((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)
    incognito = e.get("incognito_mode") is True
    if _is_episode(e):
        spoken.add(SPOKEN_EPISODE, e.get("spotify_episode_uri"), e.get("episode_show_name"),
                   e.get("episode_name"), at, ms, min_ms, incognito)  # fmt: skip
    else:
        spoken.add(SPOKEN_CHAPTER, e.get("audiobook_chapter_uri"), e.get("audiobook_title"),
                   e.get("audiobook_chapter_title"), at, ms, min_ms, incognito)  # fmt: skip


def _new_ref(rows: _Rows, e: dict, uri: str, kind: int) -> int:
    """Record a ref the file has not named before: a track's names come from its entry."""
    track = e.get("master_metadata_track_name")
    artist = e.get("master_metadata_album_artist_name")
    album = e.get("master_metadata_album_album_name")
    return rows.ref(str(uri), kind, track, artist, album)
