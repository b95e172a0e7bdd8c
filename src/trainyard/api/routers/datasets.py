"""/v1/datasets: immutable snapshots NAME@vN; /v1/dataset-blobs: their content-addressed files.

A client hashes its files, asks which contents are missing, uploads only those
(each checked against the sha256 it is stored under), then creates the
version from the manifest. An unchanged file is never uploaded or stored twice.
A dataset is its team's (data/snapshots.py says who may do what).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from trainyard.api.auth import CurrentUser
from trainyard.api.bodies import JsonBody
from trainyard.api.platform import Platform, get_platform
from trainyard.data import manifest, snapshots
from trainyard.spec import NAME_PATTERN
from trainyard.store.registry_tables import Dataset, DatasetVersion

router = APIRouter(tags=["datasets"])


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="Relative POSIX path inside the dataset.")
    bytes: int = Field(ge=0)
    sha256: str = Field(description="64 lowercase hex digits.")


class CreateSnapshot(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN, description="The dataset; unique on this server.")
    team: str | None = Field(None, pattern=NAME_PATTERN, description=(
        "The team that owns a new dataset (its viewers read it, its members add versions, its jobs use "
        "it); default: your only team, else `default`. A new version keeps the dataset's team."))
    project: str = Field("default", pattern=NAME_PATTERN)
    files: list[FileEntry] = Field(description="Every file, each already stored under its sha256.")
    source: str = Field("", max_length=4096, description="Where it was made from, for people.")
    description: str = Field("", max_length=10_000)


class MissingQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: list[str] = Field(max_length=manifest.MAX_FILES)


class SnapshotView(BaseModel):
    ref: str = Field(description="NAME@vN, as a job's `dataset` names it.")
    name: str
    version: int
    team: str
    project: str
    digest: str = Field(description="sha256 of the manifest: the snapshot's identity.")
    file_count: int
    bytes: int
    source: str
    description: str
    created_at: datetime
    created_by: str


class SnapshotDetail(SnapshotView):
    files: list[FileEntry]


class CreatedSnapshot(SnapshotView):
    created: bool = Field(description="False when the manifest equals the latest version's: that one is returned.")


class DatasetView(BaseModel):
    name: str
    team: str
    project: str
    versions: int
    latest: SnapshotView | None
    created_at: datetime


def _view(v: DatasetVersion, ds: Dataset) -> dict:
    return dict(ref=snapshots.ref_of(v), name=v.dataset, version=v.version, team=ds.team, project=ds.project,
                digest=v.digest,
                file_count=v.file_count, bytes=v.bytes, source=v.source, description=v.description,
                created_at=v.created_at, created_by=v.created_by)


def _dataset_view(ds: Dataset, count: int, latest: DatasetVersion | None) -> DatasetView:
    return DatasetView(name=ds.name, team=ds.team, project=ds.project, versions=count, created_at=ds.created_at,
                       latest=SnapshotView(**_view(latest, ds)) if latest else None)


# Up to 32 MiB of JSON each (api/limits.py): decoded and validated in a thread, not on the event loop.
_MISSING, _MANIFEST = JsonBody(MissingQuery), JsonBody(CreateSnapshot, items="files")


@router.post("/v1/dataset-blobs/missing", openapi_extra=_MISSING.openapi, responses=_MISSING.responses)
def missing_blobs(who: CurrentUser, body: MissingQuery = Depends(_MISSING),
                  platform: Platform = Depends(get_platform)) -> dict:
    """Which of these file contents are not stored yet: upload only those. Contents are shared by every
    team and named by their sha256: the answer says only whether bytes with that hash are stored."""
    return {"missing": snapshots.missing_blobs(platform.blobs, body.sha256, who)}


@router.put("/v1/dataset-blobs/{sha256}", openapi_extra={"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def upload_blob(sha256: str, request: Request, who: CurrentUser,
                      platform: Platform = Depends(get_platform)) -> dict:
    """Store one file's content under its sha256; refused (nothing stored) if the bytes hash otherwise."""
    size, stored = await snapshots.store_blob(platform.blobs, sha256, request.stream(), who)
    return {"sha256": sha256, "bytes": size, "stored": stored}


@router.post("/v1/datasets", status_code=201, response_model=CreatedSnapshot, openapi_extra=_MANIFEST.openapi,
             responses=_MANIFEST.responses)
def create_snapshot(who: CurrentUser, body: CreateSnapshot = Depends(_MANIFEST),
                    platform: Platform = Depends(get_platform)) -> CreatedSnapshot:
    """Make NAME@vN from a manifest whose files are all stored (or return the unchanged latest).
    A name another team holds is refused as taken (409): names are unique on the server."""
    ds, row, created = snapshots.create_version(
        platform.store, platform.blobs, who, body.name, body.team, body.project,
        [f.model_dump() for f in body.files], body.source, body.description)
    return CreatedSnapshot(**_view(row, ds), created=created)


@router.get("/v1/datasets")
def list_datasets(who: CurrentUser, project: str | None = Query(None, max_length=64),
                  platform: Platform = Depends(get_platform)) -> dict:
    """The datasets of the teams you may read."""
    with platform.store.session() as s:
        items = [_dataset_view(*row) for row in snapshots.list_datasets(s, who, project)]
    return {"items": [i.model_dump(mode="json") for i in items]}


@router.get("/v1/datasets/{name}")
def get_dataset(name: str, who: CurrentUser, platform: Platform = Depends(get_platform)) -> dict:
    """A dataset and all its versions, newest first (manifests not included)."""
    with platform.store.session() as s:
        ds = snapshots.readable(s, who, name)
        versions = snapshots.versions_of(s, name)
        view = _dataset_view(ds, len(versions), versions[0] if versions else None).model_dump(mode="json")
        view["items"] = [SnapshotView(**_view(v, ds)).model_dump(mode="json") for v in versions]
    return view


@router.get("/v1/datasets/{name}/versions/{version}", response_model=SnapshotDetail)
def get_snapshot(name: str, version: str, who: CurrentUser,
                 platform: Platform = Depends(get_platform)) -> SnapshotDetail:
    """One snapshot with its manifest; `version` is N or vN."""
    number = snapshots.parse_version(version)
    with platform.store.session() as s:
        ds, row = snapshots.readable_version(s, who, name, number)
        return SnapshotDetail(**_view(row, ds), files=[FileEntry(**f) for f in row.files])
