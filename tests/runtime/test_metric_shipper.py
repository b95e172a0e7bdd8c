"""The metric shipper delivers every point, survives a server restart, and obeys fencing."""

from __future__ import annotations

import math
import time

from tests.runtime.recording_server import RecordingServer
from trainyard.client import Client
from trainyard.runtime.metrics import MetricShipper, server_send
from trainyard.runtime.stop import StopSignal


def shipper_to(recorder: RecordingServer, stop: StopSignal | None = None, **kw) -> MetricShipper:
    connect = lambda: Client(recorder.url, timeout=2.0).attempt("job-1", 1)  # noqa: E731
    return MetricShipper(server_send(connect, rank=0), stop=stop, interval_s=0.1, **kw)


def delivered_steps(recorder: RecordingServer, key: str) -> list[int]:
    with recorder.lock:
        return sorted(p["step"] for p in recorder.points if p["key"] == key)


def test_every_logged_point_is_delivered_once(recorder):
    shipper = shipper_to(recorder)
    for step in range(3000):
        shipper.log({"loss": 1.0 / (step + 1), "lr": 0.1}, step)
    assert shipper.flush(timeout=15)
    shipper.close()
    assert delivered_steps(recorder, "loss") == list(range(3000))
    assert delivered_steps(recorder, "lr") == list(range(3000))
    first = next(p for p in recorder.points if p["key"] == "loss" and p["step"] == 1)
    assert first["value"] == 0.5 and first["timestamp"] > 0


def test_points_travel_as_msgpack_columns_at_most_ten_thousand_a_request(recorder):
    shipper = shipper_to(recorder)
    recorder.stop()  # points pile up while the server is away, then go out in capped requests
    for step in range(12_500):
        shipper.log({"loss": float(step), "grad_norm": math.nan if step == 7 else 1.0}, step)
    recorder.start()
    assert shipper.flush(timeout=20)
    shipper.close()
    assert delivered_steps(recorder, "loss") == list(range(12_500))
    assert {ctype for ctype, _ in recorder.metric_posts} == {"application/msgpack"}
    assert max(n for _, n in recorder.metric_posts) <= 10_000
    assert sum(n for _, n in recorder.metric_posts) == 25_000
    nan = next(p for p in recorder.points if p["key"] == "grad_norm" and p["step"] == 7)
    assert math.isnan(nan["value"])


def test_points_logged_while_server_is_down_are_delivered_when_it_returns(recorder):
    shipper = shipper_to(recorder)
    recorder.stop()
    for step in range(200):
        shipper.log({"loss": float(step)}, step)
    time.sleep(1.0)  # the shipper tries, fails and backs off
    assert shipper.delivered == 0
    recorder.start()  # same port, as a restarted server
    assert shipper.flush(timeout=20)
    shipper.close()
    assert delivered_steps(recorder, "loss") == list(range(200))


def test_full_buffer_keeps_the_newest_points(recorder):
    shipper = shipper_to(recorder, max_points=100)
    recorder.stop()
    for step in range(250):
        shipper.log({"loss": float(step)}, step)
    time.sleep(0.5)
    recorder.start()
    assert shipper.flush(timeout=20)
    shipper.close()
    assert delivered_steps(recorder, "loss") == list(range(150, 250))
    assert shipper.dropped == 150


def test_stale_attempt_stops_shipping_for_good_and_requests_stop(recorder):
    stop = StopSignal()
    shipper = shipper_to(recorder, stop=stop)
    recorder.stale = True
    shipper.log({"loss": 1.0}, 1)
    assert recorder.wait_for(lambda: stop.is_set())
    assert "no longer current" in (stop.reason or "")
    recorder.stale = False
    shipper.log({"loss": 2.0}, 2)
    assert shipper.flush(timeout=2)
    shipper.close()
    assert recorder.points == []


def test_log_never_blocks_on_an_unreachable_server(recorder):
    recorder.stop()
    shipper = shipper_to(recorder)
    start = time.perf_counter()
    for step in range(10_000):
        shipper.log({"loss": 1.0}, step)
    elapsed = time.perf_counter() - start
    shipper.close(timeout=0.2)
    assert elapsed < 1.0  # 100 µs a call at worst, on a busy shared machine
