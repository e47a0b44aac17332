"""Extended streaming history (`Streaming_History_Audio_*.json`, `endsong_*.json` and the
video files): entries to staged rows. The hot loop of an import: keep it lean."""

from __future__ import annotations

from datetime import UTC, datetime

from sync.history_import.staged import (
    KIND_EPISODE,
    KIND_NAMED_EPISODE,
    KIND_NAMED_TRACK,
    KIND_TRACK,
    SKIP_AUDIOBOOK,
    SKIP_INCOGNITO,
    SKIP_NO_TRACK,
    SKIP_PODCAST,
    SKIP_SHORT,
    SKIP_VIDEO,
    ExportFormatError,
    ParsedFile,
    ParseOptions,
    _bad_time,
    _ms,
    _Rows,
    ms_text,
)
from sync.store.catalogue import placeholder


def _is_episode(e: dict) -> bool:
    return bool(e.get("spotify_episode_uri") or e.get("episode_name"))


def _is_audiobook(e: dict) -> bool:
    return bool(
        e.get("audiobook_uri") or e.get("audiobook_chapter_uri") or e.get("audiobook_title")
    )


def _video_skips(name: str, entries: list, options: ParseOptions, parsed: ParsedFile) -> None:
    """A video file without --include-video: each row counts under the first reason that
    applies (SKIP_REASONS' order), so its episodes count as podcast, the rest as video."""
    skipped = parsed.skipped
    for index, e in enumerate(entries):
        if type(e) is not dict:
            raise ExportFormatError(name, "is not a JSON object", index + 1)
        if not options.include_podcasts and _is_episode(e):
            skipped[SKIP_PODCAST] += 1
        elif _is_audiobook(e):
            skipped[SKIP_AUDIOBOOK] += 1
        else:
            skipped[SKIP_VIDEO] += 1


def _extended(name: str, entries: list, options: ParseOptions, parsed: ParsedFile) -> None:
    """Extended streaming history rows. Hot loop (a million entries an import): keep it lean."""
    rows = _Rows(parsed, same_if_ms_differs=True)
    by_ref, seen_at, skipped = rows.by_ref, rows.at, parsed.skipped
    min_ms, podcasts = options.min_ms, options.include_podcasts
    fromiso = datetime.fromisoformat
    names = ()  # (track, artist, album) of the last episode or URI-less row
    ts_ms, offsets, texts, mss, refs = (parsed.ts_ms, parsed.offset_ms, parsed.at_text,
                                        parsed.ms, parsed.ref_idx)  # fmt: skip
    for index, e in enumerate(entries):
        if type(e) is not dict:
            raise ExportFormatError(name, "is not a JSON object", index + 1)
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
        elif _is_episode(e):
            if not podcasts:
                skipped[SKIP_PODCAST] += 1
                continue
            kind = KIND_EPISODE
        elif _is_audiobook(e):
            skipped[SKIP_AUDIOBOOK] += 1
            continue
        elif e.get("master_metadata_track_name"):
            kind = KIND_NAMED_TRACK  # no URI but names (local files, withdrawn tracks)
        else:
            skipped[SKIP_NO_TRACK] += 1
            continue
        if e.get("incognito_mode") is True:
            skipped[SKIP_INCOGNITO] += 1
            continue
        if ms < min_ms:
            skipped[SKIP_SHORT] += 1
            continue
        if kind != KIND_TRACK:
            uri, kind, *names = _other_extended(e, kind)
        ri = by_ref.get(uri)
        if ri is None:  # once per distinct track of the file
            ri = _new_ref(rows, e, uri, kind, names)
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


def _new_ref(rows: _Rows, e: dict, uri: object, kind: int, names: list) -> int:
    """Record a ref the file has not named before: a track's names come from its entry."""
    if kind == KIND_TRACK:
        track = e.get("master_metadata_track_name")
        artist = e.get("master_metadata_album_artist_name")
        album = e.get("master_metadata_album_album_name")
        return rows.ref(str(uri), kind, track, artist, album)
    return rows.ref(uri, kind, *names)


def _other_extended(e: dict, kind: int) -> tuple:
    """(ref, kind, track, artist, album) of an episode or a URI-less track row."""
    if kind == KIND_EPISODE:
        uri = e.get("spotify_episode_uri")
        track = e.get("episode_name") or uri
        album = e.get("episode_show_name")
        if uri:
            return str(uri), KIND_EPISODE, track, None, album
        return (
            placeholder("episode", album, track),
            KIND_NAMED_EPISODE,
            track,
            None,
            album,
        )
    track = e.get("master_metadata_track_name")
    artist = e.get("master_metadata_album_artist_name")
    album = e.get("master_metadata_album_album_name")
    return (
        placeholder("track", artist, track),
        KIND_NAMED_TRACK,
        track,
        artist,
        album,
    )
