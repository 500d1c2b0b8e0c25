"""http.probe against the lab's hostile web servers on loopback. An unrequested gzip body (the lab's bomb: a login
page, then zeros, 1 GiB once inflated) was read as compressed bytes, so the login form it carries went unseen;
it is inflated now, never past MAX_BODY."""

from __future__ import annotations

import tracemalloc

from checks.http import probe
from scanner.sdk.http_wire import MAX_BODY
from tests.checks.hostile_loopback import Hostile, context, finishes


def test_gzip_bomb_is_read_up_to_the_body_bound():
    with Hostile("http-gzip-bomb", 80) as h:
        ctx = context(h.address, 80, "http", "http.probe", timeout=20)
        tracemalloc.start()
        try:
            result, error, seconds = finishes(lambda: probe.run(ctx), 15)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert error is None
    [obs] = result
    d = obs.data
    assert (d["status"], d["password_form"], d["title"], d["body_bytes"]) == (200, True, "hostile gzip bomb", MAX_BODY)
    assert peak < 8 * MAX_BODY
    assert seconds < 5


def test_endless_chunked_body_is_cut_at_the_body_bound():
    with Hostile("http-endless-chunked", 8080) as h:
        ctx = context(h.address, 8080, "http-alt", "http.probe", timeout=20)
        result, error, _ = finishes(lambda: probe.run(ctx), 15)
    assert error is None
    [obs] = result
    assert (obs.data["status"], obs.data["password_form"]) == (200, False)
    assert MAX_BODY - 5000 < obs.data["body_bytes"] <= MAX_BODY


def test_redirect_loop_is_followed_once():
    with Hostile("http-redirect-loop", 80) as h:
        ctx = context(h.address, 80, "http", "http.probe", timeout=20)
        [obs], error, _ = finishes(lambda: probe.run(ctx), 15)
    assert error is None
    d = obs.data
    assert (d["status"], d["location"], d["followed"]["status"], d["followed"]["location"]) == (
        302, f"http://{h.address}/loop", 302, f"http://{h.address}/")
