"""``make bench-servers``'s pure parts: wrk's script and output, the table, the GC knob.

No timing is asserted; the one test that runs ``wrk`` checks only what it counts.
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks import _server_apps
from benchmarks.servers import (
    ROWS,
    Row,
    added_ratio,
    browser_headers,
    busy_ticks,
    machine,
    parse_wrk,
    rotated,
    spread,
    table_row,
    throughput_verdict,
    verdict,
    wrk_script,
)
from kratos_aal.testing import serve

BENCH = (
    "Running 4s test @ http://127.0.0.1:1/\n"
    "BENCH requests=11400 duration_us=4000000 p50_us=2500 p90_us=4000 p99_us=9100"
    " max_us=31250 non200=3 errors=2\n"
)


def test_parse_wrk_reads_every_field_in_milliseconds() -> None:
    result = parse_wrk(BENCH, 0.2)
    assert result["requests"] == 11400
    assert result["p50_ms"] == 2.5
    assert result["p90_ms"] == 4.0
    assert result["p99_ms"] == 9.1
    assert result["max_ms"] == 31.25
    assert result["non_200"] == 3
    assert result["errors"] == 2


def test_parse_wrk_counts_throughput_after_the_stagger_only() -> None:
    assert parse_wrk(BENCH, 0.2)["rps"] == pytest.approx(11400 / 3.8)
    assert parse_wrk(BENCH, 0.0)["rps"] == pytest.approx(11400 / 4.0)


def test_parse_wrk_refuses_output_without_its_line() -> None:
    with pytest.raises(ValueError, match="no BENCH line"):
        parse_wrk("Running 4s test @ http://127.0.0.1:1/\n", 0.3)


@pytest.mark.parametrize(("stagger", "refused"), [(3.99, False), (4.0, True)])
def test_parse_wrk_refuses_a_run_no_longer_than_the_stagger(stagger: float, refused: bool) -> None:
    if refused:
        with pytest.raises(ValueError, match="not longer than the stagger"):
            parse_wrk(BENCH, stagger)
    else:
        assert parse_wrk(BENCH, stagger)["rps"] == pytest.approx(11400 / 0.01)


def test_wrk_script_delays_each_connections_first_request_only_when_asked() -> None:
    staggered = wrk_script(32, 300)
    assert "function delay()" in staggered
    assert "if calls <= 32 then return 300 end" in staggered
    assert "delay" not in wrk_script(32, 0)


def test_wrk_script_counts_every_status_but_200() -> None:
    # wrk's own count misses redirects (it counts statuses above 399).
    assert "if status ~= 200 then" in wrk_script(1, 0)


def test_busy_ticks_leaves_idle_and_iowait_out() -> None:
    stat = "cpu  10 1 20 900 50 3 4 5 7 0\ncpu0 5 0 10 450 25 1 2 2 3 0\n"
    assert busy_ticks(stat) == 10 + 1 + 20 + 3 + 4 + 5


def test_added_ratio_of_the_fastapi_dependency() -> None:
    assert added_ratio(100.0, 116.0, 132.0) == 2.0
    assert added_ratio(100.0, 116.0, 140.0) == 2.5
    # An empty Depends measured as free gives no ratio, and no "met".
    assert added_ratio(100.0, 100.0, 140.0) == float("inf")
    assert verdict(added_ratio(100.0, 99.0, 140.0)) == "missed"


@pytest.mark.parametrize(("ratio", "said"), [(2.0, "met"), (2.0001, "missed"), (1.2, "met")])
def test_verdict_on_both_sides_of_the_target(ratio: float, said: str) -> None:
    assert verdict(ratio) == said


def test_rotated_puts_each_side_first_in_turn() -> None:
    sides = ["bare", "empty", "guarded"]
    assert [rotated(sides, turn)[0] for turn in range(4)] == ["bare", "empty", "guarded", "bare"]
    assert sorted(rotated(sides, 2)) == sorted(sides)


def _run(rps: float, cpu_us: float, p99_ms: float, bad: int = 0) -> dict[str, float]:
    return {"rps": rps, "cpu_us": cpu_us, "p99_ms": p99_ms, "non_200": bad, "errors": 0}


def test_table_row_of_fastapi_shows_three_sides_and_the_added_ratio() -> None:
    fastapi = next(row for row in ROWS if len(row.sides) == 3)
    runs = {
        "bare": [_run(8000, 120, 11.0), _run(8200, 122, 12.0), _run(7000, 140, 30.0)],
        "empty Depends": [_run(7000, 136, 13.0)] * 3,
        "guarded": [_run(6000, 170, 19.0, bad=1)] * 3,
    }
    line = table_row(fastapi, runs)
    assert "| 8,000 → 6,000 |" in line
    # Paired per round: 6000/8000, 6000/8200, 6000/7000.
    assert "| 0.75 (0.73-0.86) | ≥ 0.85: unresolved |" in line  # one round of three kept it
    assert "| 122 → 136 → 170 | +48 (+30 to +50) |" in line
    assert "+48 / +14 µs = 3.43x (≤ 2.0x: missed)" in line
    assert "| 12.0 → 13.0 → 19.0 |" in line
    assert line.endswith("| 3 |")


def test_table_row_of_two_sides_has_no_added_ratio() -> None:
    row = Row(
        "Flask, gunicorn", "gunicorn", (("bare", "flask_bare"), ("guarded", "flask_guarded")), 0.9
    )
    line = table_row(row, {"bare": [_run(2000, 300, 40.0)], "guarded": [_run(1800, 330, 45.0)]})
    assert line == (
        "| Flask, gunicorn | 2,000 → 1,800 | 0.90 (0.90-0.90) | ≥ 0.90: unresolved | 300 → 330"
        " | +30 (+30 to +30) | - | 40.0 → 45.0 | 0 |"
    )  # one round: nothing to tell it from noise


@pytest.mark.parametrize(
    ("ratios", "said"),
    [
        ([0.92, 0.91, 0.93], "met"),
        ([0.90, 1.01, 0.99], "met"),  # the target itself, and rounds above 1
        ([0.80, 0.82, 0.81], "missed"),
        ([0.85, 0.88, 0.92, 0.93, 0.94], "unresolved"),  # a median above, two rounds below
        ([0.95, 0.80, 1.02], "unresolved"),
        ([0.95], "unresolved"),  # one round: no spread to judge by
    ],
)
def test_throughput_verdict_needs_every_round_on_one_side(ratios: list[float], said: str) -> None:
    assert throughput_verdict(ratios, 0.9) == said


def test_spread_is_the_median_and_min_max() -> None:
    assert spread([3.0, 1.0, 2.0, 10.0, 2.5], 1) == "2.5 (1.0-10.0)"
    assert spread([22.0, -26.0, 31.0], 0, signed=True) == "+22 (-26 to +31)"
    assert spread([-5.0, -9.0, 3.0], 0, signed=True) == "-5 (-9 to +3)"


def test_machine_names_python_cpus_and_virtualisation() -> None:
    cpuinfo = "model name\t: AMD EPYC 9654\nflags\t\t: fpu vme hypervisor lahf_lm\n"
    assert machine(cpuinfo, "docker", 16, 2, "cpython 3.12.3") == (
        "Python cpython 3.12.3, 2 of 16 CPUs usable (AMD EPYC 9654), a virtual machine, docker"
    )
    bare_metal = "model name\t: Intel Xeon\nflags\t\t: fpu vme lahf_lm\n"
    assert machine(bare_metal, "none", 8, 8, "cpython 3.11.7").endswith(
        "(Intel Xeon), no hypervisor flag"
    )
    assert "CPU model unknown" in machine("", None, 1, 1, "pypy 3.10")


def test_browser_headers_send_a_same_origin_referer_and_the_cookie_last() -> None:
    arguments = browser_headers("http://127.0.0.1:8000/", "a=1; ory_kratos_session=x")
    headers = arguments[1::2]
    assert set(arguments[::2]) == {"-H"}
    assert "Referer: http://127.0.0.1:8000/account" in headers
    assert any(header.startswith("User-Agent: Mozilla/5.0") for header in headers)
    assert headers[-1] == "Cookie: a=1; ory_kratos_session=x"
    assert not any(header.lower().startswith(("host:", "connection:")) for header in headers)


def test_every_row_names_factories_that_exist_bare_first() -> None:
    for row in ROWS:
        assert row.sides[0][0] == "bare"
        assert row.target == (0.9 if row.server == "gunicorn" else 0.85)  # issue 28's
        for _, factory in row.sides:
            assert callable(getattr(_server_apps, factory))


@pytest.fixture
def collector() -> Iterator[None]:
    yield
    gc.unfreeze()
    gc.enable()


@pytest.mark.usefixtures("collector")
def test_bench_gc_freeze_and_disable(monkeypatch: pytest.MonkeyPatch) -> None:
    app = object()
    monkeypatch.setenv("BENCH_GC", "freeze")
    assert _server_apps._gc(app) is app
    assert gc.get_freeze_count() > 0
    assert gc.isenabled()
    gc.unfreeze()
    monkeypatch.setenv("BENCH_GC", "disable")
    _server_apps._gc(app)
    assert not gc.isenabled()
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("collector")
def test_bench_gc_unset_leaves_the_collector_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_GC", raising=False)
    _server_apps._gc(None)
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_bench_gc_names_itself_when_misspelt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_GC", "off")
    with pytest.raises(SystemExit, match="BENCH_GC must be"):
        _server_apps._gc(None)


def _status_app(status: int) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


@pytest.mark.parametrize(("status", "stagger_ms"), [(200, 0), (303, 300)])
def test_wrk_runs_the_script_and_counts_redirects(
    status: int, stagger_ms: int, tmp_path: Path
) -> None:
    if shutil.which("wrk") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("wrk is missing: .ci/run installs it")
        pytest.skip("needs the Debian package wrk")
    script = tmp_path / "bench.lua"
    script.write_text(wrk_script(1, stagger_ms))
    with serve(_status_app(status)) as url:
        out = subprocess.run(
            ["wrk", "-t", "1", "-c", "1", "-d", "1s", "-s", str(script), url],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    result = parse_wrk(out, stagger_ms / 1000)
    assert result["requests"] > 0
    assert result["non_200"] == (result["requests"] if status != 200 else 0)
    assert result["errors"] == 0
