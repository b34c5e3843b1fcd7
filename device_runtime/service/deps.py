"""Dependencies of the service's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from device_runtime.service.alerts import DriftAlerts
from device_runtime.service.jobs import JobRunner
from device_runtime.service.served import ServedModel
from device_runtime.service.settings import ServiceSettings
from device_runtime.service.store import ExampleStore


def get_settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


def get_served(request: Request) -> ServedModel:
    return request.app.state.served


def get_store(request: Request) -> ExampleStore:
    return request.app.state.store


def get_jobs(request: Request) -> JobRunner:
    return request.app.state.jobs


def get_alerts(request: Request) -> DriftAlerts:
    return request.app.state.alerts


Settings = Annotated[ServiceSettings, Depends(get_settings)]
Served = Annotated[ServedModel, Depends(get_served)]
Store = Annotated[ExampleStore, Depends(get_store)]
Jobs = Annotated[JobRunner, Depends(get_jobs)]
Alerts = Annotated[DriftAlerts, Depends(get_alerts)]
