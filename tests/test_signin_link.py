"""Sign-in links (sync.signin_link): signed state, stable text, checks without storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest

from sync.config import load_settings
from sync.errors import UserError
from sync.signin_link import LinkRefused, check_state, link_expiry, sign_in_link

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def settings(**extra: str):
    env = {
        "SPOTIFY_CLIENT_ID": "client-abc",
        "SPOTIFY_CLIENT_SECRET": "secret-xyz",
        **extra,
    }
    return load_settings(env)


def state_of(url: str) -> str:
    return parse_qs(urlparse(url).query)["state"][0]


def test_link_is_spotifys_authorize_url_for_the_loopback_redirect():
    url, _ = sign_in_link(settings(), 1, NOW)
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    assert f"{parsed.scheme}://{parsed.netloc}{parsed.path}" == (
        "https://accounts.spotify.com/authorize"
    )
    assert query["client_id"] == ["client-abc"]
    assert query["redirect_uri"] == ["http://127.0.0.1:8888/callback"]
    assert query["response_type"] == ["code"]
    assert query["scope"] == ["user-read-recently-played"]
    assert "secret-xyz" not in url


def test_state_round_trips_subject_and_new():
    s = settings()
    for subject in (1, 7, 123456):
        url, _ = sign_in_link(s, subject, NOW)
        assert check_state(s, state_of(url), NOW) == subject
    url, _ = sign_in_link(s, None, NOW)
    assert ".new." in state_of(url)
    assert check_state(s, state_of(url), NOW) is None


def test_link_text_is_stable_within_a_period_and_valid_15_to_30_days():
    s = settings()
    period = timedelta(days=15)
    start = datetime.fromtimestamp((int(NOW.timestamp()) // 1296000) * 1296000, UTC)
    first, expires = sign_in_link(s, 3, start)
    assert expires == start + 2 * period
    late, late_expires = sign_in_link(s, 3, start + period - timedelta(seconds=1))
    assert (late, late_expires) == (first, expires)
    nxt, nxt_expires = sign_in_link(s, 3, start + period)
    assert nxt != first and nxt_expires == expires + period
    for moment in (NOW, start, start + period - timedelta(seconds=1)):
        left = link_expiry(moment) - moment
        assert period < left <= 2 * period


def test_expired_state_refused_with_its_date():
    s = settings()
    url, expires = sign_in_link(s, 2, NOW)
    state = state_of(url)
    assert check_state(s, state, expires - timedelta(seconds=1)) == 2
    with pytest.raises(LinkRefused, match=f"expired on {expires:%Y-%m-%d}"):
        check_state(s, state, expires)


def test_state_for_another_app_refused():
    url, _ = sign_in_link(settings(SPOTIFY_CLIENT_ID="other-app"), 1, NOW)
    with pytest.raises(LinkRefused, match="another app"):
        check_state(settings(), state_of(url), NOW)


def test_state_made_with_another_client_secret_refused():
    url, _ = sign_in_link(settings(SPOTIFY_CLIENT_SECRET="another-secret"), 1, NOW)
    with pytest.raises(LinkRefused, match="signature does not match"):
        check_state(settings(), state_of(url), NOW)


@pytest.mark.parametrize(
    "change",
    [
        lambda parts: parts[:2] + ["2"] + parts[3:],  # another user
        lambda parts: parts[:2] + ["new"] + parts[3:],  # a new person instead
        lambda parts: parts[:3] + [str(int(parts[3]) + 86400)] + parts[4:],  # longer life
        lambda parts: parts[:4] + [("A" if parts[4][0] != "A" else "B") + parts[4][1:]],
    ],
)
def test_tampered_state_refused(change):
    s = settings()
    url, _ = sign_in_link(s, 1, NOW)
    forged = ".".join(change(state_of(url).split(".")))
    with pytest.raises(LinkRefused, match="signature does not match"):
        check_state(s, forged, NOW)


@pytest.mark.parametrize(
    "state",
    ["", "abc", "v2.x.1.1.y", "v1..1.1.", "v1.abcdefgh.0.1800000000." + "A" * 43,
     "v1.abcdefgh.-1.1800000000." + "A" * 43, "v1.abcdefgh.1.1800000000." + "A" * 44],
)  # fmt: skip
def test_malformed_state_refused(state):
    with pytest.raises(LinkRefused, match="malformed") as info:
        check_state(settings(), state, NOW)
    assert isinstance(info.value, UserError) and info.value.exit_code == 2
    assert "\n" not in str(info.value)


def test_subject_must_be_a_user_key():
    with pytest.raises(ValueError):
        sign_in_link(settings(), 0, NOW)
