"""Podcast episodes and audiobook chapters an import keeps, apart from music plays.

Tables spoken_items and spoken_plays (sql/009_spoken_plays.sql); the rules are in
docs/import.md ("Podcasts and audiobooks"). An item is found by its URI, or by kind,
show (book) and name when the export has none; an item first stored without a URI takes
on the URI of extended history that names it the same way. Plays deduplicate like music
plays: the same file twice adds nothing (the key), an account-data play (minute
precision) is already stored when an extended play of the same item ends in that minute,
and extended history replaces account-data plays it stands for, one for one. An item
that takes on a URI takes the extended row's names too (exact case). Runs inside
the import's transaction; never commits.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg

from sync.store.sources import SOURCE_ACCOUNT, SOURCE_EXTENDED

log = logging.getLogger(__name__)

_STAGE = """
create temp table if not exists import_spoken (
    kind smallint, uri text, show text, name text, played_at timestamptz, ms_played integer,
    item_id integer, seq bigint generated always as identity  -- file order
) on commit drop;
truncate import_spoken
"""

# Items, one statement a step (no parameters: sent as one round trip). Names compare
# lower-cased, a missing show as empty, as the unique index spoken_items_name_key does.
_ITEMS = """
update spoken_items i set uri = s.uri, show = coalesce(s.show, i.show), name = s.name
  from (select distinct on (kind, lower(coalesce(show, '')), lower(name)) kind, uri, show, name
          from import_spoken s
         where uri is not null and name is not null
           and not exists (select 1 from spoken_items x where x.uri = s.uri)
         order by kind, lower(coalesce(show, '')), lower(name), seq) s
 where i.uri is null and i.kind = s.kind
   and lower(coalesce(i.show, '')) = lower(coalesce(s.show, '')) and lower(i.name) = lower(s.name);

insert into spoken_items (kind, uri, show, name)
select distinct on (uri) kind, uri, show, name from import_spoken s
 where uri is not null and not exists (select 1 from spoken_items x where x.uri = s.uri)
 order by uri
    on conflict (uri) where uri is not null do nothing;

insert into spoken_items (kind, show, name)
select distinct on (kind, lower(coalesce(show, '')), lower(name)) kind, show, name
  from import_spoken s
 where uri is null
   and not exists (select 1 from spoken_items x
                    where x.kind = s.kind and lower(x.name) = lower(s.name)
                      and lower(coalesce(x.show, '')) = lower(coalesce(s.show, '')))
 order by kind, lower(coalesce(show, '')), lower(name), seq  -- as the file first names it
    on conflict (kind, lower(coalesce(show, '')), lower(name)) where uri is null do nothing;

update import_spoken s set item_id = i.id from spoken_items i
 where s.uri is not null and i.uri = s.uri;

update import_spoken s set item_id = m.id
  from (select distinct on (kind, lower(coalesce(show, '')), lower(name))
               kind, lower(coalesce(show, '')) as show_key, lower(name) as name_key, id
          from spoken_items
         order by kind, lower(coalesce(show, '')), lower(name), (uri is not null) desc, id) m
 where s.uri is null and m.kind = s.kind
   and m.show_key = lower(coalesce(s.show, '')) and m.name_key = lower(s.name)
"""

# Extended history replaces the account-data plays of the same item in the same minute,
# as many as it brings (the earliest first).
_REPLACE = """
with ext as (
    select item_id, date_trunc('minute', played_at) as minute, count(*) as n
      from import_spoken group by 1, 2),
old as (
    select p.played_at, p.item_id, e.n,
           row_number() over (partition by p.item_id, e.minute order by p.played_at) as rn
      from spoken_plays p
      join ext e on e.item_id = p.item_id
                and p.played_at >= e.minute and p.played_at < e.minute + interval '1 minute'
     where p.user_id = %(user)s and p.source = %(account)s),
gone as (
    delete from spoken_plays p using old o
     where p.user_id = %(user)s and p.played_at = o.played_at and p.item_id = o.item_id
       and o.rn <= o.n
    returning 1)
select count(*) from gone
"""

# Plays; an account-data play is left out when an extended play of its item ends in the
# same minute (its k-th play of that minute, counting from 0, when more than k do).
_INSERT = """
with staged as (
    select s.*, row_number() over (partition by s.item_id, date_trunc('minute', s.played_at)
                                   order by s.played_at) - 1 as k
      from import_spoken s),
ins as (
    insert into spoken_plays (played_at, user_id, item_id, ms_played, source)
    select s.played_at, %(user)s, s.item_id, s.ms_played, %(source)s
      from staged s
     where %(source)s <> %(account)s
        or s.k >= (select count(*) from spoken_plays p
                    where p.user_id = %(user)s and p.item_id = s.item_id
                      and p.source = %(extended)s
                      and p.played_at >= date_trunc('minute', s.played_at)
                      and p.played_at < date_trunc('minute', s.played_at) + interval '1 minute')
     order by s.played_at
        on conflict (user_id, played_at, item_id) do nothing
    returning item_id)
select i.kind, count(*) from ins join spoken_items i on i.id = ins.item_id group by 1
"""


@dataclass
class SpokenResult:
    """What storing a file's episode and chapter plays did, in counts."""

    new: Counter = field(default_factory=Counter)  # spoken_items.kind -> plays inserted
    already: int = 0  # stored before (same play imported, or its extended play)
    replaced: int = 0  # account-data plays replaced by extended history


def store_plays(
    conn: psycopg.Connection, user_key: int, rows: Sequence[tuple], source: int
) -> SpokenResult:
    """Store (kind, uri, show, name, played_at text, ms_played) rows of one file."""
    result = SpokenResult()
    if not rows:
        return result
    conn.execute(_STAGE)
    with conn.cursor().copy(
        "copy import_spoken (kind, uri, show, name, played_at, ms_played) from stdin"
    ) as copy:
        for row in rows:
            copy.write_row(row)
    conn.execute(_ITEMS)
    args = {"user": user_key, "source": source, "account": SOURCE_ACCOUNT,
            "extended": SOURCE_EXTENDED}  # fmt: skip
    if source == SOURCE_EXTENDED:
        result.replaced = conn.execute(_REPLACE, args).fetchone()[0]
    result.new.update(dict(conn.execute(_INSERT, args).fetchall()))
    result.already = len(rows) - sum(result.new.values())
    return result
