"""GET /healthz: the service is up and a head is loaded."""

from __future__ import annotations

from fastapi import APIRouter

from device_runtime.service.deps import Jobs, Served
from device_runtime.service.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness, the served head version, and whether a job runs")
def healthz(served: Served, jobs: Jobs) -> Health:
    return Health(status="ok", head_version=served.slot.head_version, job_running=jobs.running)
