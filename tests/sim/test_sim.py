"""The simulator: traces in, the same policy code, metrics out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer import Typer
from typer.testing import CliRunner

from trainyard.cli.sim import sim
from trainyard.scheduler.policy import PRESETS
from trainyard.sim.cluster import ClusterShape, equal_teams
from trainyard.sim.engine import SimOptions, replay
from trainyard.sim.metrics import jain_index, summarize, team_shares
from trainyard.sim.trace import TraceError, TraceJob, compression_for_load, load_trace, scale

PHILLY = Path(__file__).resolve().parents[2] / ".." / "shared" / "traces" / "philly.csv"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "trace.csv"
    p.write_text(text)
    return p


def test_our_csv_with_iso_times_and_optional_columns(tmp_path: Path) -> None:
    p = write(tmp_path, "submit_time,duration,num_gpus,team,priority,expected_duration,preemptible\n"
                        "2024-01-01T00:01:00,60,8,vision,high,90,true\n"
                        "2024-01-01T00:00:00,30,1,,,,\n")
    jobs = load_trace(p)
    assert [(j.submit_time, j.gpus, j.team) for j in jobs] == [(0.0, 1, "default"), (60.0, 8, "vision")]
    assert jobs[1].priority == "high" and jobs[1].expected_duration == 90 and jobs[1].preemptible
    assert jobs[0].expected_duration is None and not jobs[0].preemptible


def test_philly_columns_read_with_the_cluster_as_team(tmp_path: Path) -> None:
    p = write(tmp_path, "timestamp,duration,num_gpus,gpu_time,cluster\n"
                        "2017-10-09 07:01:55,66.0,1,66.0,11cb48\n2017-10-09 07:00:55,10.0,2,20.0,6214e9\n")
    jobs = load_trace(p, estimates=True, preemptible=True)
    assert [(j.submit_time, j.team, j.gpus) for j in jobs] == [(0.0, "6214e9", 2), (60.0, "11cb48", 1)]
    assert jobs[0].expected_duration == 10.0 and jobs[0].preemptible


@pytest.mark.parametrize(
    ("text", "message"),
    [("a,b\n1,2\n", "missing column"), ("submit_time,duration,num_gpus\n0,ten,1\n", "line 2")],
)
def test_bad_traces_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        load_trace(write(tmp_path, text))


def test_scaling_replicates_and_compresses() -> None:
    jobs = [TraceJob(f"j{i}", 100.0 * i, 50.0, 1) for i in range(10)]
    out = scale(jobs, replicate=3, compress=10.0)
    assert len(out) == 30 and out[-1].submit_time <= 90.0 + 10.0
    assert all(j.duration == 50.0 for j in out)
    assert compression_for_load(jobs, 10, 1.0) == pytest.approx(10 * 900 / 500)


def _jobs() -> list[TraceJob]:
    # a 16-GPU head blocks FIFO while 1-GPU jobs wait behind it
    out = [TraceJob("busy", 0.0, 1000.0, 16, team="a", expected_duration=1000.0, preemptible=True),
           TraceJob("head", 1.0, 500.0, 16, team="a", expected_duration=500.0, preemptible=True)]
    out += [TraceJob(f"s{i}", 2.0 + i, 100.0, 1, team="b", expected_duration=100.0, preemptible=True)
            for i in range(40)]
    return out


@pytest.mark.parametrize("policy", ["fifo", "backfill", "trainyard"])
def test_every_job_completes_and_metrics_add_up(policy: str) -> None:
    shape = ClusterShape(3, 8)
    result = replay(_jobs(), shape, PRESETS[policy], equal_teams(["a", "b"], shape.total_gpus),
                    SimOptions(cycle_interval_s=1.0))
    s = summarize(result)
    assert s["completed"] == s["jobs"] == 42
    assert 0 < float(s["utilization"]) <= 1  # type: ignore[arg-type]
    assert float(s["p50_jct_s"]) <= float(s["p99_jct_s"]) <= float(s["makespan_s"])  # type: ignore[arg-type]
    assert s["decisions_per_s"] > 0  # type: ignore[operator]


def test_backfill_and_ours_beat_fifo_when_the_head_blocks() -> None:
    shape = ClusterShape(3, 8)
    teams = equal_teams(["a", "b"], shape.total_gpus)
    avg = {p: float(summarize(replay(_jobs(), shape, PRESETS[p], teams, SimOptions(cycle_interval_s=1.0)))
                    ["avg_jct_s"])  # type: ignore[arg-type]
           for p in PRESETS}
    assert avg["backfill"] < avg["fifo"] and avg["trainyard"] < avg["fifo"]


def test_spot_reclaims_requeue_jobs_with_their_checkpoints() -> None:
    jobs = [TraceJob(f"j{i}", 0.0, 7200.0, 1, preemptible=True) for i in range(16)]
    shape = ClusterShape(2, 8, spot_fraction=0.5)
    result = replay(jobs, shape, PRESETS["trainyard"], [],
                    SimOptions(checkpoint_every_s=600.0, spot_reclaims_per_hour=2.0, spot_outage_s=600.0))
    s = summarize(result)
    assert result.spot_evictions > 0 and s["completed"] == 16
    # each eviction loses at most one checkpoint interval
    assert result.lost_gpu_s <= result.spot_evictions * 600.0


def test_jain_index_is_one_when_every_team_gets_its_due() -> None:
    shape = ClusterShape(4, 8)
    jobs = [TraceJob(f"{t}{i}", float(i), 3600.0, 4, team=t) for t in "ab" for i in range(4)]
    result = replay(jobs, shape, PRESETS["trainyard"], equal_teams(["a", "b"], shape.total_gpus))
    assert jain_index(team_shares(result)) == pytest.approx(1.0)


def test_yard_sim_compare_prints_json_lines_and_writes_a_plot(tmp_path: Path) -> None:
    app = Typer()
    app.command("sim")(sim)
    app.command("noop")(lambda: None)
    trace = tmp_path / "t.csv"
    trace.write_text("submit_time,duration,num_gpus,team\n" +
                     "".join(f"{i * 10},{100 + i},{1 + i % 4},t{i % 3}\n" for i in range(60)))
    png = tmp_path / "out.png"
    res = CliRunner().invoke(app, ["sim", str(trace), "--nodes", "4", "--compare", "fifo,backfill,trainyard",
                                   "--json", "--plot", str(png)])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert [d["policy"] for d in lines] == ["fifo", "backfill", "trainyard"]
    assert {"avg_jct_s", "p99_queue_s", "utilization", "jain_index", "cycle_p99_ms",
            "decisions_per_s"} <= set(lines[0])
    assert png.stat().st_size > 0


@pytest.mark.slow
@pytest.mark.skipif(not PHILLY.exists(), reason="needs ../shared/traces/philly.csv")
def test_full_philly_replay_on_a_smaller_cluster_beats_fifo() -> None:
    jobs = load_trace(PHILLY, estimates=True, preemptible=True)
    shape = ClusterShape(1250, 8)
    jobs = scale(jobs, compress=compression_for_load(jobs, shape.total_gpus, 3.0))
    teams = equal_teams({j.team for j in jobs}, shape.total_gpus)
    fifo = summarize(replay(jobs, shape, PRESETS["fifo"], teams))
    ours = summarize(replay(jobs, shape, PRESETS["trainyard"], teams))
    assert ours["completed"] == len(jobs)
    assert float(ours["avg_jct_s"]) < 0.5 * float(fifo["avg_jct_s"])  # type: ignore[arg-type]
