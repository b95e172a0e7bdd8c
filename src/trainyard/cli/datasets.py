"""`yard datasets`: immutable snapshots of a directory, NAME@vN, for jobs to name in their spec.

    yard datasets create digits ./data/digits [--team vision] [--project mnist]   # prints digits@v1
    yard datasets list
    yard datasets show digits[@v2]
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from trainyard.cli import render
from trainyard.cli.errors import call, err, fail
from trainyard.client import Client
from trainyard.data import manifest

app = typer.Typer(no_args_is_help=True, help="Dataset snapshots: content-addressed, immutable NAME@vN "
                  "that jobs name in `dataset:` and read, verified and read-only, at ctx.dataset_dir.")
out = Console()

ServerOpt = Annotated[str | None, typer.Option("--server", envvar="TRAINYARD_SERVER",
                                               help="Server URL (default http://127.0.0.1:8765).")]


def _progress() -> Progress:
    return Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), console=err, transient=True)


def _hash(root: Path) -> list[dict[str, Any]]:
    try:
        paths = manifest.files_under(root)
    except manifest.ManifestError as exc:
        fail(str(exc))
    with _progress() as bar:
        task = bar.add_task(f"hashing {len(paths)} files", total=sum(p.stat().st_size for p in paths))
        return manifest.build(root, progress=lambda n: bar.advance(task, n))


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="The dataset's name (unique on the server).")],
    path: Annotated[Path, typer.Argument(help="The directory to snapshot.")],
    team: Annotated[str | None, typer.Option("--team", "-t", help=(
        "The team that owns a new dataset: its viewers read it, its members add versions, its jobs use it "
        "(default: your only team, else `default`)."))] = None,
    project: Annotated[str, typer.Option("--project", "-p", help="The project it is filed under.")] = "default",
    description: Annotated[str, typer.Option(help="What it holds, for people.")] = "",
    server_url: ServerOpt = None,
) -> None:
    """Snapshot a directory as NAME@vN: uploads only contents the server lacks; prints the ref."""
    if not path.is_dir():
        fail(f"{path} is not a directory")
    files = _hash(path)
    if not files:
        fail(f"{path} holds no files")
    with Client(server_url) as client:
        missing = set(call(client.missing_dataset_blobs, [f["sha256"] for f in files]))
        todo = list({f["sha256"]: f for f in reversed(files) if f["sha256"] in missing}.values())
        with _progress() as bar:
            task = bar.add_task(f"uploading {len(todo)} of {len(files)} files",
                                total=sum(f["bytes"] for f in todo))
            for f in todo:
                call(client.upload_dataset_blob, f["sha256"], path / f["path"],
                     progress=lambda n: bar.advance(task, n))
        snap = call(client.create_dataset_version, name, files, project, str(path.resolve()), description, team)
    print(snap["ref"], flush=True)
    size = sum(f["bytes"] for f in files)
    what = "created" if snap["created"] else "unchanged; same content as"
    err.print(f"{what} {snap['ref']} (team {snap['team']}, project {snap['project']}): {len(files)} files, "
              f"{size:,} bytes, {len(todo)} uploaded; digest {snap['digest'][:19]}…", highlight=False)


@app.command("list")
def list_datasets(
    project: Annotated[str | None, typer.Option("--project", "-p", help="Only this project's.")] = None,
    server_url: ServerOpt = None,
) -> None:
    """Datasets with their latest version."""
    with Client(server_url) as client:
        items = call(client.datasets, project)
    table = Table(box=None, header_style="bold")
    for col in ("NAME", "TEAM", "PROJECT", "LATEST", "VERSIONS", "FILES", "BYTES", "AGE"):
        table.add_column(col)
    for d in items:
        latest = d["latest"] or {}
        table.add_row(d["name"], d["team"], d["project"], latest.get("ref", "-"), str(d["versions"]),
                      str(latest.get("file_count", "-")), f"{latest.get('bytes', 0):,}",
                      render.age(latest.get("created_at")))
    out.print(table)


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="NAME (its versions) or NAME@vN (its manifest).")],
    server_url: ServerOpt = None,
) -> None:
    """A dataset's versions, or one snapshot's files with sizes and checksums."""
    with Client(server_url) as client:
        if "@" not in ref:
            ds = call(client.dataset, ref)
            table = Table(title=f"{ds['name']} (project {ds['project']})", title_justify="left", box=None,
                          header_style="bold")
            for col in ("VERSION", "FILES", "BYTES", "DIGEST", "BY", "AGE", "SOURCE"):
                table.add_column(col)
            for v in ds["items"]:
                table.add_row(v["ref"], str(v["file_count"]), f"{v['bytes']:,}", v["digest"][:19] + "…",
                              v["created_by"], render.age(v["created_at"]), v["source"])
            out.print(table)
            return
        name, version = ref.rsplit("@", 1)
        snap = call(client.dataset_version, name, version)
    table = Table(title=f"{snap['ref']} (project {snap['project']}) {snap['digest']}", title_justify="left",
                  box=None, header_style="bold")
    for col in ("PATH", "BYTES", "SHA256"):
        table.add_column(col)
    for f in snap["files"]:
        table.add_row(f["path"], f"{f['bytes']:,}", f["sha256"])
    out.print(table)
