"""`yard rerun JOB`: the same job again, from the inputs its run recorded.

The resolved spec, the same code archive (by digest) and the same dataset
snapshot; the only difference is a `rerun_of` label, so the new run's lineage
points back at the original.
"""

from __future__ import annotations

from trainyard.control import jobs
from trainyard.control.loop import ControlLoop
from trainyard.principal import Principal
from trainyard.spec import parse_job_spec
from trainyard.storage import BlobStore
from trainyard.store import Store, repo
from trainyard.store.tables import Job
from trainyard.tracking.lineage import RERUN_LABEL


def rerun(store: Store, loop: ControlLoop, blobs: BlobStore, job_id: str, who: Principal) -> Job:
    """Submit `job_id` again from its recorded inputs, as `who`; the new job is labelled a rerun of it."""
    with store.session() as s:
        old = jobs.readable(s, who, job_id)
        spec = dict(old.spec)
        code = {"digest": old.code_digest, "git_commit": old.code_git_commit, "git_dirty": old.code_git_dirty}
    spec["labels"] = {**(spec.get("labels") or {}), RERUN_LABEL: job_id}
    job = jobs.submit(store, loop, blobs, parse_job_spec(spec), code if code["digest"] else None, who)
    with store.session() as s:
        digest = str(code["digest"] or "none")
        repo.add_event(s, job.id, "rerun", f"a rerun of job {job_id}: its resolved spec, code "
                       f"{digest[:19]}… and dataset {spec.get('dataset') or 'none'}")
    return job
