"""Evaluations on the control loop: each new version's evaluation runs as an ordinary job.

`EvaluationDriver` runs after every reconcile pass (`loop.add_driver`). A
PENDING version gets its evaluation job (`registry.evaluation.evaluation_job`)
submitted through `control.jobs.submit`; a RUNNING one is judged
(`registry.evaluation.judge`) once its job ends. Everything it knows it reads
from the store, so a server restart loses nothing.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from trainyard.control import jobs
from trainyard.control.loop import ControlLoop
from trainyard.principal import SYSTEM
from trainyard.registry.evaluation import DRIVER, evaluation_job, finish, judge
from trainyard.registry.models import add_event, get_model, get_version
from trainyard.spec import SpecError
from trainyard.store import repo
from trainyard.store.registry_tables import ModelVersion

log = logging.getLogger("trainyard.registry")


class EvaluationDriver:
    """Starts and judges the evaluations of every PENDING or RUNNING model version."""

    def __call__(self, loop: ControlLoop) -> None:
        with loop.store.session() as s:
            todo = s.execute(select(ModelVersion.model, ModelVersion.version, ModelVersion.eval_state)
                             .where(ModelVersion.eval_state.in_(["PENDING", "RUNNING"]))
                             .order_by(ModelVersion.id)).all()
        for model, version, state in todo:
            try:
                if state == "PENDING":
                    self._start(loop, model, version)
                else:
                    with loop.store.session() as s:
                        judge(s, get_version(s, model, version))
            except Exception:  # noqa: BLE001 - retried on the next pass from what the store says
                log.exception("evaluating %s@v%s failed", model, version)

    def _start(self, loop: ControlLoop, model_name: str, version: int) -> None:
        with loop.store.session() as s:
            model, row = get_model(s, model_name), get_version(s, model_name, version)
            try:
                spec, code = evaluation_job(model, row, repo.get_job(s, row.run_id))
            except SpecError as exc:
                finish(s, row, False, f"the evaluation job is not valid: {exc}")
                return
        try:
            job = jobs.submit(loop.store, loop, loop.blobs, spec, code, SYSTEM)  # asked for at registration
        except SpecError as exc:
            with loop.store.session() as s:
                finish(s, get_version(s, model_name, version), False,
                       f"the evaluation job was refused: {exc}")
            return
        with loop.store.session() as s:
            row = get_version(s, model_name, version)
            row.eval_state, row.eval_job_id = "RUNNING", job.id
            row.eval_reason = f"evaluation job {job.id} is running"
            add_event(s, model_name, "evaluation_started", f"v{version}: evaluation job {job.id} submitted "
                      f"({' '.join(spec.entrypoint)} on {spec.dataset})", DRIVER, version=version)
            repo.add_event(s, job.id, "evaluation", f"evaluates {model_name}@v{version} (checkpoint step "
                           f"{row.checkpoint_step} of run {row.run_id})")
