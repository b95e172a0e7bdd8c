"""`yard runs` against a real server: list with filters, compare, metric CSV, artifacts, errors."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from trainyard.client import Client


def test_list_filters_and_compare_lines_runs_up(client: Client, tracking_server):
    exp = f"cli-{uuid.uuid4().hex[:6]}"
    ids = []
    for lr, acc in ((0.001, 0.97), (0.1, 0.99), (0.002, 0.80)):
        run = client.create_run("cli", experiment=exp, params={"lr": lr})["id"]
        client.log_metrics(run, [{"key": "val_acc", "step": s, "timestamp": 1.0 + s, "value": acc * s / 9}
                                 for s in range(10)])
        ids.append(run)
    listed = tracking_server.yard("runs", "list", "-e", exp, "-f", "val_acc > 0.95 and params.lr < 0.01",
                                  "--json")
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [ids[0]]

    table = tracking_server.yard("runs", "list", "-e", exp, "--sort", "metrics.val_acc desc")
    assert table.returncode == 0, table.stderr
    order = [line.split()[0] for line in table.stdout.splitlines()[1:] if line.strip()]
    assert order == [ids[1], ids[0], ids[2]]

    compared = tracking_server.yard("runs", "compare", *ids)
    assert compared.returncode == 0, compared.stderr
    lr_row = next(line for line in compared.stdout.splitlines() if line.strip().startswith("params.lr"))
    assert lr_row.split()[1:] == ["0.001", "0.1", "0.002"]

    csv = tracking_server.yard("runs", "metric", ids[0], "val_acc")
    assert csv.returncode == 0, csv.stderr
    lines = csv.stdout.splitlines()
    assert lines[0] == "step,timestamp,value" and len(lines) == 11 and lines[-1].startswith("9,10.0,0.97")


def test_artifacts_round_trip_through_the_cli(client: Client, tracking_server, tmp_path: Path):
    run = client.create_run("cli-artifacts")["id"]
    source = tmp_path / "model.pt"
    source.write_bytes(b"\x00weights" * 10_000)
    up = tracking_server.yard("runs", "upload", run, str(source), "--as", "final/model.pt")
    assert up.returncode == 0, up.stderr
    assert "80,000 bytes" in up.stderr
    dest = tmp_path / "back.pt"
    down = tracking_server.yard("runs", "download", run, "final/model.pt", "-o", str(dest))
    assert down.returncode == 0, down.stderr
    assert dest.read_bytes() == source.read_bytes()
    shown = tracking_server.yard("runs", "show", run)
    assert "final/model.pt" in shown.stdout


def test_mistakes_are_one_line_on_stderr_and_a_nonzero_exit(tracking_server):
    bad = tracking_server.yard("runs", "list", "-f", "val_acc >")
    assert bad.returncode != 0
    assert bad.stderr.strip().count("\n") == 0 and "filter:" in bad.stderr
    missing = tracking_server.yard("runs", "show", "no-such-run")
    assert missing.returncode != 0 and "no run 'no-such-run'" in missing.stderr
