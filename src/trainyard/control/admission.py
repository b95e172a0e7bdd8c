"""Admission: the one gate every new job passes, whichever path creates it.

A person's submit, a sweep's trial, a rerun, a model's evaluation and any later path that
makes jobs call `admit`; nothing else writes a job row. It refuses, with a 422 naming the
field, a job that could never run on this cluster, whose code archive is missing, whose
priority class is unknown, whose dataset is not a snapshot of its own team's, or whose env
names a secret its team does not have; and, with a
403, a job for a team the caller may not submit to. A job's team is never self-declared: the
caller must hold member (or admin) in it. Drivers that make jobs for a sweep or an evaluation
pass the principal that asked for them, or `SYSTEM` for work a person asked for earlier.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from trainyard.auth import secrets
from trainyard.backends import Capacity
from trainyard.control import teams
from trainyard.data import snapshots
from trainyard.principal import Forbidden, Principal
from trainyard.spec import JobSpec, SpecError
from trainyard.storage import BlobStore, require_archive
from trainyard.store import repo
from trainyard.store.tables import Job


def check_fits(spec: JobSpec, capacity: Capacity) -> None:
    """Refuse a job that could never run here, rather than queue it forever."""
    r = spec.resources
    errors = []
    if r.total_gpus > capacity.gpus:
        errors.append({"field": "resources.gpus_per_worker", "message":
                       f"the job asks for {r.total_gpus} GPUs in all ({r.workers} workers × "
                       f"{r.gpus_per_worker}) but this cluster has {capacity.gpus}; lower "
                       "gpus_per_worker or workers"})
    if r.total_cpus > capacity.cpus:
        errors.append({"field": "resources.cpus_per_worker", "message":
                       f"the job asks for {r.total_cpus:g} CPUs in all but this cluster has "
                       f"{capacity.cpus:g}; lower cpus_per_worker or workers"})
    if r.total_memory_gb > capacity.memory_gb:
        errors.append({"field": "resources.memory_gb", "message":
                       f"the job asks for {r.total_memory_gb:g} GiB in all but this cluster has "
                       f"{capacity.memory_gb:.0f}; lower memory_gb or workers"})
    if errors:
        raise SpecError(errors)


def check_team(who: Principal, spec: JobSpec) -> None:
    if who.may_write(spec.team):
        return
    mine = who.writable_teams()
    yours = f"you may submit to {', '.join(mine)}" if mine else "you are a member of no team yet"
    raise Forbidden(f"team: {who.name!r} may not submit jobs to team {spec.team!r}; {yours} "
                    "(set `team:` in the spec, or ask that team's admin to add you)")


def check(s: Session, blobs: BlobStore, capacity: Capacity, spec: JobSpec,
          code: dict[str, Any] | None, who: Principal) -> int:
    """Every check of `admit` without writing anything; returns the priority class's value."""
    check_team(who, spec)
    secrets.require_refs(s, spec.team, spec.secret_env)  # after the team check: only its members learn names
    check_fits(spec, capacity)
    require_archive(blobs, (code or {}).get("digest"))
    classes = teams.priority_classes(s)
    if spec.priority not in classes:
        raise SpecError([{"field": "priority", "message": f"unknown priority class {spec.priority!r}; "
                          f"use one of {', '.join(classes)}"}])
    if spec.dataset:  # a snapshot of another team's, or none: refused now, not at launch
        snapshots.resolve_for_job(s, spec.dataset, spec.team, who)
    return classes[spec.priority]


def admit(s: Session, blobs: BlobStore, capacity: Capacity, spec: JobSpec,
          code: dict[str, Any] | None, who: Principal) -> Job:
    """Check `spec` and write its job, QUEUED, in the caller's transaction."""
    priority = check(s, blobs, capacity, spec, code, who)
    return repo.create_job(s, spec, code or {}, priority=priority)


def as_template(exc: SpecError, prefix: str) -> SpecError:
    """The same errors with their fields under `prefix` (a sweep's `job.`, a model's `evaluation.`)."""
    return SpecError([{**e, "field": f"{prefix}{e['field']}"} for e in exc.errors])
