"""``make bench``'s FakeKratos in a process of its own (the cache-miss row's client CPU)."""

from __future__ import annotations

import httpx

from benchmarks._fake_server import fake_process


def test_the_fake_process_answers_whoami_for_its_sessions_and_stops() -> None:
    with fake_process(2) as fake:
        assert fake["url"].startswith("http://127.0.0.1:")
        assert len(set(fake["cookies"])) == 2
        for cookie in fake["cookies"]:
            reply = httpx.get(
                f"{fake['url']}/sessions/whoami",
                headers={"Cookie": f"{fake['cookie_name']}={cookie}"},
            )
            assert reply.status_code == 200
            assert reply.json()["authenticator_assurance_level"] == "aal2"
        url = fake["url"]
    try:
        httpx.get(f"{url}/sessions/whoami", timeout=2)
    except httpx.ConnectError:
        pass  # stopped with the block
    else:
        raise AssertionError("the fake still answers after the block")
