"""Evaluation gates on the control loop: each new version's evaluation runs as an ordinary job.

`EvaluationDriver` runs after every reconcile pass (`loop.add_driver`). A
PENDING version gets its evaluation job (the model's entrypoint and code, its
dataset snapshot, the version's checkpoint in the hyperparameters) submitted
through `control.jobs.submit`; a RUNNING one is judged once its job ends: the
job's last metrics against the rule and the champion's metrics. Everything it
knows it reads from the store, so a server restart loses nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainyard.control import jobs
from trainyard.control.loop import ControlLoop
from trainyard.registry import rules
from trainyard.registry.aliases import champion
from trainyard.registry.models import RegistryError, add_event, get_model, get_version
from trainyard.registry.spec import EvaluationSpec
from trainyard.spec import JobSpec, JobState, SpecError, parse_job_spec
from trainyard.store import repo
from trainyard.store.registry_tables import Model, ModelVersion
from trainyard.store.tables import Job

log = logging.getLogger("trainyard.registry")

DRIVER = "trainyard"  # the actor of what the driver does


def evaluation_job(model: Model, row: ModelVersion, run: Job) -> tuple[JobSpec, dict[str, Any] | None]:
    """The job that evaluates `row`: the training run's hyperparameters (to rebuild the model), the
    evaluation's own, and which checkpoint to load."""
    ev = EvaluationSpec.model_validate(model.evaluation)
    hparams = {**(run.spec.get("hyperparameters") or {}), **ev.hyperparameters,
               "checkpoint_uri": row.checkpoint_uri, "checkpoint_step": row.checkpoint_step,
               "model_version": f"{model.name}@v{row.version}"}
    spec = parse_job_spec({
        "name": f"eval-{model.name[:48]}-v{row.version}", "team": ev.team, "project": model.project,
        "entrypoint": ev.entrypoint, "dataset": ev.dataset, "hyperparameters": hparams,
        "resources": ev.resources.model_dump(), "max_restarts": ev.max_restarts,
        "heartbeat_timeout_s": ev.heartbeat_timeout_s,
        "labels": {"model": model.name, "model_version": str(row.version), "evaluates_run": row.run_id},
    })
    code = ({"digest": model.code_digest, "git_commit": model.code_git_commit,
             "git_dirty": model.code_git_dirty} if model.code_digest else None)
    return spec, code


def request(s: Session, row: ModelVersion, actor: str) -> None:
    """Evaluate `row` (again): it goes back to PENDING and the driver starts a job."""
    model = get_model(s, row.model)
    if model.evaluation is None:
        raise RegistryError("model", f"model {model.name} declares no evaluation; add one to its model.yaml "
                                     "and run `yard models create` again")
    if row.eval_state in ("PENDING", "RUNNING"):
        raise RegistryError("version", f"v{row.version}'s evaluation is already {row.eval_state.lower()}")
    row.eval_state, row.eval_job_id, row.eval_reason = "PENDING", None, "waiting to start the evaluation job"
    add_event(s, model.name, "evaluation_requested", f"v{row.version}: evaluation requested by {actor}", actor,
              version=row.version)


def _finish(s: Session, row: ModelVersion, passed: bool, reason: str) -> None:
    row.eval_state, row.eval_reason = ("PASSED" if passed else "FAILED"), reason
    add_event(s, row.model, "evaluation_passed" if passed else "evaluation_failed",
              f"v{row.version} {'passed' if passed else 'failed'} its evaluation: {reason}", DRIVER,
              version=row.version)


def judge(s: Session, row: ModelVersion) -> None:
    """Once the evaluation job has ended: PASSED or FAILED, with every comparison in the reason."""
    job = repo.get_job(s, row.eval_job_id or "")
    state = JobState(job.state)
    if not state.terminal:
        return
    if state != JobState.SUCCEEDED:
        _finish(s, row, False, f"evaluation job {job.id} {state.lower()}: {job.reason}")
        return
    model = get_model(s, row.model)
    metrics = {k: v["value"] for k, v in repo.last_metrics(s, job.id).items() if not k.startswith("system/")}
    row.eval_metrics = metrics
    champ = champion(s, model)
    against = champ if champ is not None and champ.version != row.version and champ.eval_metrics else None
    verdict = rules.evaluate(rules.parse((model.evaluation or {})["rule"]), metrics,
                             against.eval_metrics if against else None)
    who = f"champion v{against.version}" if against else "no champion"
    _finish(s, row, verdict.passed, f"{verdict.reason} (job {job.id}, against {who})")


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
                _finish(s, row, False, f"the evaluation job is not valid: {exc}")
                return
        try:
            job = jobs.submit(loop.store, loop, loop.blobs, spec, code)
        except SpecError as exc:
            with loop.store.session() as s:
                _finish(s, get_version(s, model_name, version), False,
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
