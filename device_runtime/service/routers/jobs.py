"""POST /v1/personalize and GET /v1/jobs/{id}: background personalization jobs."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, status

from device_runtime.service.deps import Jobs
from device_runtime.service.jobs import Job
from device_runtime.service.schemas import ErrorBody, JobView, PersonalizeRequest

router = APIRouter(prefix="/v1", tags=["personalize"])


@router.post(
    "/personalize",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobView,
    summary="Start training a new head on every stored example, in the background",
    responses={code: {"model": ErrorBody} for code in (409, 422)},
)
def personalize(jobs: Jobs, body: PersonalizeRequest | None = None) -> JobView:
    body = body or PersonalizeRequest()
    return _view(jobs.start(body.mode, body.overrides(), body.new_labels))


@router.get(
    "/jobs/{job_id}",
    response_model=JobView,
    summary="A job's progress and, when done, its result",
    responses={404: {"model": ErrorBody}},
)
def get_job(job_id: str, jobs: Jobs) -> JobView:
    return _view(jobs.get(job_id))


def _view(job: Job) -> JobView:
    fields = dataclasses.asdict(job)
    fields.pop("overrides")
    fields.pop("new_labels")
    return JobView(**fields)
