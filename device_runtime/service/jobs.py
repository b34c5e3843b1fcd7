"""Personalization jobs: one at a time, in a background thread, progress readable any time.

Each job's record goes to the service's SQLite store when it starts and when it
ends; a job that was running when the service was killed reads as failed after
the restart, saying so.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import uuid
from typing import Any

from device_runtime.service.errors import FieldError, JobConflictError, JobNotFoundError
from device_runtime.service.served import ServedModel
from device_runtime.service.store import as_inputs
from device_runtime.trainer import Progress
from edgeft.config import NewLabels, TrainConfig
from edgeft.errors import ConfigError

KEEP_FINISHED_JOBS = 100  # records of older finished jobs are dropped; memory and the store stay bounded on a device
JOB_COUNT_META = "examples_at_last_job"  # store meta key: examples stored when the last job started (the drift policy reads it)


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclasses.dataclass
class Job:
    """One personalization run. Mutated only by its worker thread; read by the API."""

    id: str
    mode: str
    overrides: dict[str, Any]
    status: str = "queued"  # queued -> running -> succeeded | failed
    stage: str | None = None
    done: int = 0
    total: int = 0
    loss: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    created: str = dataclasses.field(default_factory=now_iso)
    finished: str | None = None
    trigger: str = "request"  # "request" (POST /v1/personalize) or "drift" (the retraining policy)
    new_labels: NewLabels = NewLabels.REFUSE  # ADD: stored labels the head lacks claim spare output slots


def _check_overrides(config: TrainConfig, overrides: dict[str, Any]) -> None:
    """Refuse now, with a 422 naming the field, what would only fail inside the job's thread."""
    try:
        config.replace(**overrides)
    except ConfigError as e:
        raise FieldError(next((k for k in overrides if str(e).startswith(k)), "body"), str(e)) from e


class JobRunner:
    """Starts jobs, refuses a second while one runs, and keeps every job's record."""

    def __init__(self, served: ServedModel, min_examples: int) -> None:
        self.served = served
        self.min_examples = min_examples
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._running: Job | None = None
        self._thread: threading.Thread | None = None
        self._fail_interrupted()

    def start(
        self, mode: str, overrides: dict[str, Any], new_labels: NewLabels = NewLabels.REFUSE, trigger: str = "request"
    ) -> Job:
        """Start training on every stored example (``trigger`` says who asked; ``new_labels`` as in ``fit``).

        Raises:
            JobConflictError: a job is running already.
            FieldError: fewer stored examples than the minimum, or an override the training config refuses.
        """
        _check_overrides(self.served.slot.personalizer.config, overrides)
        count = self.served.store.count()
        if count < self.min_examples:
            raise FieldError(
                "examples",
                f"{count} example(s) stored; personalizing needs at least {self.min_examples}. POST /v1/examples first.",
            )
        with self._lock:
            if self._running is not None:
                raise JobConflictError(
                    f"Personalization job {self._running.id} is still running; wait for it "
                    f"(GET /v1/jobs/{self._running.id}) before starting another."
                )
            job = self._running = Job(uuid.uuid4().hex[:12], mode, overrides, trigger=trigger, new_labels=new_labels)
            self.served.store.set_meta(JOB_COUNT_META, str(count))
            self._jobs[job.id] = job
            for old in list(self._jobs)[: -KEEP_FINISHED_JOBS - 1]:
                del self._jobs[old]
            self._save(job)
            self._thread = threading.Thread(target=self._run, args=(job,), name=f"personalize-{job.id}", daemon=True)
            self._thread.start()
            return job

    @property
    def running(self) -> bool:
        return self._running is not None

    def get(self, job_id: str) -> Job:
        """The job ``job_id``: live while this service runs it, else as the store recorded it.

        Raises:
            JobNotFoundError: no such job (or one older than the last ``KEEP_FINISHED_JOBS``).
        """
        if job_id in self._jobs:
            return self._jobs[job_id]
        record = self.served.store.job(job_id)
        if record is None:
            raise JobNotFoundError(f"No personalization job {job_id!r}; POST /v1/personalize starts one.")
        return Job(**record)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running job, if any, ends (used at shutdown)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, job: Job) -> None:
        job.status = "running"
        self._save(job)
        try:
            stored, labels = self.served.store.all()
            candidate = self.served.fresh()
            train = candidate.partial_fit if job.mode == "continue" else candidate.fit
            train(
                as_inputs(stored, candidate.bundle.manifest.input.modality),
                labels,
                progress=lambda p: self._progress(job, p),
                new_labels=job.new_labels,
                **job.overrides,
            )
            if candidate.report_.accepted:
                self.served.accept(candidate)
            job.result = {
                "head_version": self.served.slot.head_version,
                "history": candidate.history_,
                **candidate.report_.to_dict(),
            }
            job.status = "succeeded"
        except Exception as e:  # noqa: BLE001 - a job's failure is its result, reported by GET /v1/jobs/{id}
            job.error = f"{type(e).__name__}: {e}"
            job.status = "failed"
        finally:
            job.finished = now_iso()
            with self._lock:
                self._running = None
            self._save(job)

    def _save(self, job: Job) -> None:
        self.served.store.save_job(job.id, dataclasses.asdict(job), KEEP_FINISHED_JOBS + 1)

    def _fail_interrupted(self) -> None:
        """Jobs the store says were queued or running belonged to a service that stopped: they did not finish."""
        for record in self.served.store.jobs():
            if record["status"] in ("queued", "running"):
                job = Job(**record)
                job.status, job.finished = "failed", now_iso()
                job.error = "the service stopped while this job ran; its head was not accepted. Start a new job."
                self._save(job)

    @staticmethod
    def _progress(job: Job, progress: Progress) -> None:
        job.stage, job.done, job.total = progress.stage, progress.done, progress.total
        if progress.loss is not None:
            job.loss = progress.loss
