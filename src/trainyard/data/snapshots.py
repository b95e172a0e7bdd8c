"""Dataset snapshots in the store: NAME@vN, immutable, owned by a team.

A snapshot's files live in the blob store under their sha256, so an unchanged
file is stored once however many versions name it. A version is written only
after every file it names is stored with the size its manifest says; making
the same manifest again returns the version that already holds it.

A crash at any step (the `dataset_create.*` crash points) leaves either no
version or a whole one: a blob is moved into place only once complete, and a
dataset's row and its version's are one transaction, so a name is never held
by a dataset without versions.
Who may do what: a dataset's team's viewers read it, its members add versions,
and only jobs of its team may use it. Another team's dataset reads as missing;
only creating a name another team holds says the name is taken (a 409), since
names are unique on the server. Blob contents are shared by every team (stored
once); asking whether content is stored, or storing it, takes the member role
in some team. What that answer tells: only that the server holds bytes with
this sha256, which only someone who already has those bytes (or guesses them
exactly) can ask about; never which dataset, team, path or name holds them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, Sequence
from typing import Any

from anyio import to_thread
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from trainyard.data import manifest
from trainyard.faults import crash_point
from trainyard.principal import Principal
from trainyard.spec import SNAPSHOT_PATTERN, SpecError, version_number
from trainyard.storage import BlobStore
from trainyard.storage.blobs import BlobWriter
from trainyard.store import Store, access, repo
from trainyard.store.registry_tables import Dataset, DatasetVersion
from trainyard.store.repo import Conflict, NotFound
from trainyard.store.tables import utcnow


class DatasetError(SpecError):
    """A dataset request that cannot be done as asked: a 422 naming `field` and the fix."""

    def __init__(self, field: str, message: str):
        super().__init__([{"field": field, "message": message}])


def blob_key(sha256: str) -> str:
    return f"datasets/sha256/{sha256[:2]}/{sha256}"


def _check_digests(digests: Sequence[str]) -> None:
    for i, d in enumerate(digests):
        if not manifest.SHA256_HEX.match(d):
            raise DatasetError(f"sha256.{i}", f"{d!r} is not 64 lowercase hex digits")


def missing_blobs(blobs: BlobStore, digests: Sequence[str], who: Principal) -> list[str]:
    """Which of these file digests the blob store does not hold yet (upload only those)."""
    access.require_writer(who, "ask which dataset contents are stored")
    _check_digests(digests)
    return [d for d in dict.fromkeys(digests) if not blobs.exists(blob_key(d))]


async def store_blob(blobs: BlobStore, sha256: str, body: AsyncIterable[bytes], who: Principal) -> tuple[int, bool]:
    """Store one file's content under its sha256: (bytes, stored). Content already held is not
    written again; bytes that hash otherwise are refused and nothing is stored."""
    access.require_writer(who, "upload dataset contents")
    _check_digests([sha256])
    key = blob_key(sha256)
    if await to_thread.run_sync(blobs.exists, key):
        return await to_thread.run_sync(blobs.size, key), False

    def same_digest(writer: BlobWriter) -> None:
        if writer.sha256 != sha256:
            raise DatasetError("sha256", f"the uploaded bytes hash to {writer.sha256}, not {sha256}; "
                                         "nothing was stored")
        crash_point("dataset_create.blob_unplaced")  # every byte in a temporary file, none under its key

    blob = await blobs.put_async_stream(key, body, check=same_digest)
    crash_point("dataset_create.blob_placed")  # in place under its sha256; no answer sent
    return blob.bytes, True


def parse_ref(ref: str, field: str = "dataset") -> tuple[str, int]:
    if not re.match(SNAPSHOT_PATTERN, ref):
        raise DatasetError(field, f"{ref!r} is not a snapshot; name one as NAME@vN, e.g. digits@v1")
    name, version = ref.rsplit("@v", 1)
    return name, int(version)


def parse_version(text: str) -> int:
    """A snapshot's number from N or vN; DatasetError on `version` for anything else."""
    number = version_number(text, "version")
    if number is None:
        raise DatasetError("version", f"{text!r} is not a version; use a number such as v1")
    return number


def ref_of(v: DatasetVersion) -> str:
    return f"{v.dataset}@v{v.version}"


def missing_dataset(name: str) -> str:
    """What a caller hears of a dataset that does not exist, or that it may not see: the same words."""
    return f"no dataset {name!r}; make one with `yard datasets create {name} PATH`"


def taken(name: str) -> str:
    return f"dataset name {name!r} is taken; choose another"


def get_dataset(s: Session, name: str) -> Dataset:
    ds = s.get(Dataset, name)
    if ds is None:
        raise NotFound(missing_dataset(name))
    return ds


def readable(s: Session, who: Principal, name: str) -> Dataset:
    """The dataset, if `who` may read it (a viewer of its team or more); else reported missing."""
    ds = get_dataset(s, name)
    access.require_read(who, ds.team, missing_dataset(name))
    return ds


def versions_of(s: Session, name: str) -> list[DatasetVersion]:
    return list(s.scalars(select(DatasetVersion).where(DatasetVersion.dataset == name)
                          .order_by(DatasetVersion.version.desc())))


def get_version(s: Session, name: str, version: int) -> DatasetVersion:
    get_dataset(s, name)
    row = s.scalars(select(DatasetVersion).where(DatasetVersion.dataset == name,
                                                 DatasetVersion.version == version)).first()
    if row is None:
        raise NotFound(f"dataset {name} has no version v{version}; see `yard datasets show {name}`")
    return row


def readable_version(s: Session, who: Principal, name: str, version: int) -> tuple[Dataset, DatasetVersion]:
    """A snapshot of a dataset `who` may read (else the dataset is reported missing)."""
    return readable(s, who, name), get_version(s, name, version)


def list_datasets(s: Session, who: Principal,
                  project: str | None = None) -> list[tuple[Dataset, int, DatasetVersion | None]]:
    """(dataset, version count, latest version) per dataset `who` may read, by name."""
    stmt = select(Dataset).where(access.visible(who, Dataset.team)).order_by(Dataset.name)
    if project:
        stmt = stmt.where(Dataset.project == project)
    out = []
    for ds in s.scalars(stmt):
        versions = versions_of(s, ds.name)
        out.append((ds, len(versions), versions[0] if versions else None))
    return out


def stored_entries(blobs: BlobStore, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The manifest's entries, checked, each with its content stored at the size it says."""
    try:
        entries = manifest.check(files)
    except manifest.ManifestError as exc:
        raise DatasetError(exc.field, str(exc)) from None
    for i, f in enumerate(entries):
        key = blob_key(f["sha256"])
        if not blobs.exists(key):
            raise DatasetError(f"files.{i}.sha256", f"no stored content for {f['path']} (sha256 "
                               f"{f['sha256'][:12]}…); upload it first with PUT /v1/dataset-blobs/SHA256")
        if blobs.size(key) != f["bytes"]:
            raise DatasetError(f"files.{i}.bytes", f"{f['path']}: the stored content has "
                               f"{blobs.size(key)} bytes, the manifest says {f['bytes']}")
    return entries


def create_version(
    store: Store, blobs: BlobStore, who: Principal, name: str, team: str | None, project: str,
    files: list[dict[str, Any]], source: str = "", description: str = "",
) -> tuple[Dataset, DatasetVersion, bool]:
    """Make NAME@vN from a manifest whose files are all stored; (dataset, version, created). An
    unchanged manifest returns the latest version, not a new one. A new dataset belongs to `team`
    (`access.team_for_new` picks one if None); a version of an existing one takes its team's
    member role.

    Creates of one name at once are serialised on the dataset's row, so each gets its own
    answer: v1, then v2 for another manifest, or the same version with created=False. The
    files are checked first, outside that lock: stored contents never change.
    """
    access.require_writer(who, "create a dataset")
    entries = stored_entries(blobs, files)
    with store.session(lock=True) as s:
        result = _add_version(s, who, name, team, project, entries, source, description)
    crash_point("dataset_create.version_committed")  # NAME@vN is stored; no answer sent
    return result


def _owned(s: Session, who: Principal, name: str, team: str | None, project: str) -> Dataset:
    """The dataset row `name`, made for `team` if absent, locked; refused unless `who` may add to it."""
    if s.get(Dataset, name) is None:
        owner = access.team_for_new(who, team, "datasets")
        repo.insert_absent(s, Dataset, dict(name=name, team=owner, project=project, created_at=utcnow(),
                                            created_by=who.name))
    ds = s.scalars(select(Dataset).where(Dataset.name == name).with_for_update()
                   .execution_options(populate_existing=True)).one()
    if not access.may_read(who, ds.team):
        raise Conflict(taken(name))
    if team is not None and team != ds.team:
        raise DatasetError("team", f"dataset {name} belongs to team {ds.team}; choose another name for a "
                                   f"dataset of team {team}")
    access.require_role(who, ds.team, missing_dataset(name), action="add a version to it")
    return ds


def _add_version(s: Session, who: Principal, name: str, team: str | None, project: str,
                 entries: list[dict[str, Any]], source: str, description: str
                 ) -> tuple[Dataset, DatasetVersion, bool]:
    ds = _owned(s, who, name, team, project)
    if ds.project != project:
        raise DatasetError("project", f"dataset {name} belongs to project {ds.project}; "
                                      f"choose another name for a dataset of project {project}")
    snapshot_digest = manifest.digest(entries)
    latest = versions_of(s, name)
    if latest and latest[0].digest == snapshot_digest:
        return ds, latest[0], False
    number = (s.scalar(select(func.max(DatasetVersion.version)).where(DatasetVersion.dataset == name))
              or 0) + 1
    row = DatasetVersion(dataset=name, version=number, digest=snapshot_digest, files=entries,
                         file_count=len(entries), bytes=sum(f["bytes"] for f in entries), source=source,
                         description=description, created_at=utcnow(), created_by=who.name)
    s.add(row)
    s.flush()
    crash_point("dataset_create.version_uncommitted")  # the dataset's row and its version's, not committed
    return ds, row, True


def resolve_for_job(s: Session, ref: str, team: str, who: Principal) -> DatasetVersion:
    """The snapshot a job of `team`, asked for by `who`, names; a 422 on `dataset` if it is missing
    (or hidden from `who`) or another team's: a job reads only its own team's data."""
    name, version = parse_ref(ref)
    ds = s.get(Dataset, name)
    if ds is None or not access.may_read(who, ds.team):
        raise DatasetError("dataset", f"no dataset {name!r}; make one with `yard datasets create {name} PATH` "
                                      "or list them with `yard datasets list`")
    if ds.team != team:
        raise DatasetError("dataset", f"dataset {name} belongs to team {ds.team}; a job of team {team} "
                                      f"cannot use it (set team: {ds.team}, or snapshot the data into a "
                                      f"dataset of team {team})")
    try:
        return get_version(s, name, version)
    except NotFound:
        newest = versions_of(s, name)
        raise DatasetError("dataset", f"dataset {name} has no version v{version}; the newest is "
                                      f"{name}@v{newest[0].version}" if newest else "it has no versions"
                           ) from None
