"""A made-up year of listening for `python -m sync demo`: pure, the same for the same seed.

It has the shapes real listening has, so that `stats` and the report show what they would
show for a real person: a daily rhythm (commute, evening peak, quiet nights) that differs
on weekends, favourites that take most plays, artists discovered over the year (some
become favourites), skipped tracks, a holiday with no plays at all, and plays that
Spotify reports late (offline listening). The older part comes out as Spotify's extended
streaming history (what `import` reads), the last hours as the Web API's recently-played
items, hour by hour (what `run` fetches): the command stores both through the import's
and the sync's own code, never a side door. No artist, album or track here is real.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

DEMO_USER = "demo"  # its Spotify id; stored with status 'demo' (sql/008), never synced
DEMO_ZONE = "Europe/Berlin"
SEED = 2026
SPAN_DAYS = 400  # a year and a bit: a 12-month period plus the one before it starts
RECENT = timedelta(hours=36)  # the part stored through the sync's write, run by hourly run
EXPORT_LAG = timedelta(hours=30)  # the export ends here: its last hours overlap the sync's
OFFLINE_DELAY = timedelta(hours=3)  # a late play reaches the Web API this long after it ended
GAP_DAYS = 10  # the holiday without any listening
MIN_PLAY_MS = 30_000  # shorter plays are skips: in the export, never in recently-played

_WEEKDAY_HOURS = (1, 0.5, 0.2, 0.1, 0.1, 0.3, 2, 6, 7, 3, 2, 2,
                  4, 3, 2, 2, 3, 6, 7, 7, 8, 8, 5, 3)  # fmt: skip
_WEEKEND_HOURS = (4, 3, 1.5, 0.5, 0.2, 0.1, 0.2, 0.5, 1, 2, 5, 6,
                  6, 5, 5, 5, 5, 5, 6, 6, 7, 7, 7, 6)  # fmt: skip
_PLAYS_PER_DAY = (26, 24, 27, 25, 30, 40, 34)  # Monday first: weekends are longer
_WORDS = ("Amber", "Atlas", "Blue", "Cassette", "Cinder", "City", "Comet", "Drift", "Echo",
          "Ember", "Fever", "Glass", "Golden", "Harbor", "Heart", "Honey", "Lantern", "Light",
          "Lunar", "Meadow", "Motel", "Motion", "Neon", "Night", "Ocean", "Orchard", "Paper",
          "Parade", "Pine", "Quiet", "Rain", "River", "Satellite", "Signal", "Silver", "Sleep",
          "Static", "Summer", "Thunder", "Tide", "Velvet", "Violet", "Weather", "Window",
          "Winter", "Wild")  # fmt: skip
_GIVEN = ("Mira", "Jonas", "Lena", "Theo", "Ada", "Felix", "Nora", "Elias", "Inès", "Oskar",
          "Maya", "Levi", "Zoë", "Ruben")  # fmt: skip
_FAMILY = ("Lune", "Hart", "Okafor", "Sørensen", "Varga", "Moreau", "Castillo", "Nakamura",
           "Brandt", "Keller", "Ruiz")  # fmt: skip
_BASE62 = string.digits + string.ascii_letters


@dataclass(frozen=True)
class Artist:
    spotify_id: str
    name: str
    discovered: int  # the day (from the first) it is first played
    weight: float  # how much it is played once known (favourites weigh most)


@dataclass(frozen=True)
class Album:
    spotify_id: str
    name: str
    artist: Artist
    release_date: str
    tracks: list[Track] = field(default_factory=list, compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class Track:
    spotify_id: str
    name: str
    album: Album
    number: int
    duration_ms: int
    weight: float  # its artist's hits are played most

    @property
    def uri(self) -> str:
        return f"spotify:track:{self.spotify_id}"


@dataclass(frozen=True)
class DemoPlay:
    ended_at: datetime  # UTC, with milliseconds, as the Web API reports it
    track: Track
    ms_played: int
    offline: bool = False  # listened to offline: Spotify learns of it OFFLINE_DELAY later

    @property
    def known_at(self) -> datetime:
        return self.ended_at + OFFLINE_DELAY if self.offline else self.ended_at


@dataclass(frozen=True)
class DemoHistory:
    now: datetime
    zone: str
    first_day: date
    gap: tuple[date, date]  # first and last day of the holiday, local
    artists: tuple[Artist, ...]
    plays: tuple[DemoPlay, ...]  # by end time


def _spotify_id(rng: random.Random) -> str:
    return "".join(rng.choice(_BASE62) for _ in range(22))


def _title(rng: random.Random) -> str:
    a, b = rng.sample(_WORDS, 2)
    return rng.choice((f"{a} {b}", f"{a} of {b}", f"The {a}", f"{a} {_plural(b)}", f"{a}"))


def _plural(word: str) -> str:
    return word[:-1] + "ies" if word.endswith("y") else word + "s"


def _artist_name(rng: random.Random, taken: set) -> str:
    while True:
        a, b = rng.sample(_WORDS, 2)
        pair = frozenset((a, b))  # "Neon Cassette" and "Cassette Neon" are too alike
        name = rng.choice((f"The {a} {_plural(b)}", f"{a} {b}", f"{rng.choice(_GIVEN)} "
                           f"{rng.choice(_FAMILY)}", f"{a}{b.lower()}"))  # fmt: skip
        if name not in taken and pair not in taken:
            taken.update((name, pair))
            return name


def make_history(now: datetime, seed: int = SEED, zone: str = DEMO_ZONE) -> DemoHistory:
    """SPAN_DAYS of listening ending at `now`, the same for the same (now, seed)."""
    rng = random.Random(seed)
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    first_day = today - timedelta(days=SPAN_DAYS - 1)
    albums: dict[Artist, list[Album]] = {}
    taken: set = set()
    ranks = list(range(1, 71))
    rng.shuffle(ranks)
    artists: list[Artist] = []
    for i, rank in enumerate(ranks):
        discovered = 0 if i < 25 else rng.randint(20, SPAN_DAYS - 15)
        artists.append(Artist(_spotify_id(rng), _artist_name(rng, taken), discovered,
                              1 / rank**1.1))  # fmt: skip
    for artist in artists:
        albums[artist] = []
        for _ in range(rng.choice((1, 1, 2, 3))):
            year = rng.randint(2009, 2026)
            album = Album(_spotify_id(rng), _title(rng), artist,
                          f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}")  # fmt: skip
            for number in range(1, rng.randint(9, 14)):
                album.tracks.append(Track(_spotify_id(rng), _title(rng), album, number,
                                          rng.randint(150_000, 330_000),
                                          1 / rng.randint(1, 12)))  # fmt: skip
            albums[artist].append(album)
    gap_start = first_day + timedelta(days=int(SPAN_DAYS * 0.55))
    gap = (gap_start, gap_start + timedelta(days=GAP_DAYS - 1))
    plays: list[DemoPlay] = []
    for n in range(SPAN_DAYS):
        day = first_day + timedelta(days=n)
        if gap[0] <= day <= gap[1]:
            continue
        known = [a for a in artists if a.discovered <= n]
        weights = [_weight(a, n) for a in known]
        plays.extend(_day(rng, day, tz, known, weights, albums))
    plays = [p for p in plays if p.ended_at <= now]
    plays.sort(key=lambda p: p.ended_at)
    plays = _mark_offline(rng, plays, now)
    return DemoHistory(now, zone, first_day, gap, tuple(artists), tuple(plays))


def _weight(artist: Artist, day: int) -> float:
    """Its weight, four times as much in the three weeks after it was discovered."""
    fresh = artist.discovered > 0 and day - artist.discovered < 21
    return artist.weight * (4 if fresh else 1)


def _day(
    rng: random.Random,
    day: date,
    tz: ZoneInfo,
    known: list[Artist],
    weights: list[float],
    albums: dict[Artist, list[Album]],
) -> Iterator[DemoPlay]:
    """One local day's sessions: a few blocks of back-to-back tracks, often an album on."""
    weekend = day.weekday() >= 5
    hours = _WEEKEND_HOURS if weekend else _WEEKDAY_HOURS
    count = max(0, round(rng.gauss(_PLAYS_PER_DAY[day.weekday()], 7)))
    roll = rng.random()
    if roll < 0.04:  # a day without music
        return
    if roll < 0.10:  # a busy day: a song or two
        count //= 6
    starts = sorted(
        datetime(day.year, day.month, day.day, rng.choices(range(24), hours)[0],
                 rng.randrange(60), rng.randrange(60), tzinfo=tz).astimezone(UTC)
        for _ in range(max(1, round(count / rng.uniform(5, 11))))
    )  # fmt: skip
    per_session = [count // len(starts)] * len(starts)
    for i in range(count % len(starts)):
        per_session[i] += 1
    busy_until = datetime.min.replace(tzinfo=UTC)
    for start, length in zip(starts, per_session, strict=True):
        at = max(start, busy_until)
        track: Track | None = None
        for _ in range(length):
            track = _next_track(rng, track, known, weights, albums)
            roll = rng.random()
            if roll < 0.1:
                ms = rng.randint(2_000, MIN_PLAY_MS - 1)  # skipped after a few seconds
            elif roll < 0.15:
                ms = rng.randint(MIN_PLAY_MS, track.duration_ms)
            else:
                ms = track.duration_ms
            at += timedelta(milliseconds=ms + rng.randint(50, 900))
            yield DemoPlay(at, track, ms)
        busy_until = at


def _next_track(
    rng: random.Random,
    previous: Track | None,
    known: list[Artist],
    weights: list[float],
    albums: dict[Artist, list[Album]],
) -> Track:
    """The album plays on a third of the time; else a known artist by weight, a hit by weight."""
    if previous is not None and rng.random() < 0.35:
        tracks = previous.album.tracks
        if previous.number < len(tracks):
            return tracks[previous.number]
    artist = rng.choices(known, weights)[0]
    pool = [t for album in albums[artist] for t in album.tracks]
    return rng.choices(pool, [t.weight for t in pool])[0]


def _mark_offline(rng: random.Random, plays: list[DemoPlay], now: datetime) -> list[DemoPlay]:
    """Two full plays after the export's end were listened to offline: reported late."""
    first, last = now - EXPORT_LAG + timedelta(hours=1), now - OFFLINE_DELAY - timedelta(hours=1)
    recent = [i for i, p in enumerate(plays)
              if first < p.ended_at < last and p.ms_played >= MIN_PLAY_MS]  # fmt: skip
    for i in rng.sample(recent, min(2, len(recent))):
        p = plays[i]
        plays[i] = DemoPlay(p.ended_at, p.track, p.ms_played, offline=True)
    return plays


# -- what the import and the sync read --------------------------------------------------------
def export_files(history: DemoHistory) -> dict[str, list[dict]]:
    """The export's part (plays ending up to EXPORT_LAG before now), as Spotify's extended
    streaming history: one Streaming_History_Audio_<year>.json per year."""
    rng = random.Random(SEED + 1)
    cutoff = history.now - EXPORT_LAG
    files: dict[str, list[dict]] = {}
    for p in history.plays:
        if p.ended_at > cutoff:
            break
        # the export's clock is not the Web API's: its end time is a second or two off
        ts = p.ended_at + timedelta(milliseconds=rng.randint(-1500, 1500))
        files.setdefault(f"Streaming_History_Audio_{ts.year}.json", []).append(_export_entry(p, ts))
    return files


def _export_entry(p: DemoPlay, ts: datetime) -> dict:
    t = p.track
    done = p.ms_played >= t.duration_ms
    return {
        "ts": f"{ts:%Y-%m-%dT%H:%M:%SZ}",
        "platform": "android",
        "ms_played": p.ms_played,
        "conn_country": "DE",
        "master_metadata_track_name": t.name,
        "master_metadata_album_artist_name": t.album.artist.name,
        "master_metadata_album_album_name": t.album.name,
        "spotify_track_uri": t.uri,
        "episode_name": None,
        "episode_show_name": None,
        "spotify_episode_uri": None,
        "audiobook_title": None,
        "audiobook_uri": None,
        "audiobook_chapter_uri": None,
        "audiobook_chapter_title": None,
        "reason_start": "trackdone",
        "reason_end": "trackdone" if done else "fwdbtn",
        "shuffle": False,
        "skipped": not done,
        "offline": p.offline,
        "offline_timestamp": None,
        "incognito_mode": False,
    }


def sync_windows(history: DemoHistory) -> Iterator[tuple[datetime, list[dict]]]:
    """What an hourly `run` over the last RECENT would have fetched: at each hour, the 50
    newest plays Spotify knew of then (full plays only), newest first, in the Web API's
    recently-played shape. A late play shows up in the first window after it is known,
    older than plays stored before it."""
    start = history.now - RECENT
    hour = start
    while hour <= history.now:
        known = [p for p in history.plays
                 if p.ended_at <= hour and p.known_at <= hour
                 and p.ms_played >= MIN_PLAY_MS]  # fmt: skip
        newest = sorted(known, key=lambda p: p.ended_at, reverse=True)[:50]
        yield hour, [api_item(p) for p in newest]
        hour += timedelta(hours=1)


def api_item(p: DemoPlay) -> dict:
    """One play as GET /me/player/recently-played lists it."""
    t = p.track
    album = t.album
    artist = {"id": album.artist.spotify_id, "name": album.artist.name, "type": "artist",
              "uri": f"spotify:artist:{album.artist.spotify_id}"}  # fmt: skip
    return {
        "played_at": p.ended_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "context": None,
        "track": {
            "id": t.spotify_id,
            "uri": t.uri,
            "type": "track",
            "name": t.name,
            "duration_ms": t.duration_ms,
            "explicit": False,
            "is_local": False,
            "track_number": t.number,
            "disc_number": 1,
            "external_ids": {},
            "artists": [artist],
            "album": {
                "id": album.spotify_id,
                "uri": f"spotify:album:{album.spotify_id}",
                "name": album.name,
                "album_type": "album",
                "release_date": album.release_date,
                "images": [],
                "artists": [artist],
            },
        },
    }
