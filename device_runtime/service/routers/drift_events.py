"""GET /v1/drift/events and PUT/GET/DELETE /v1/drift/webhook: drift alerts for the apps on the device."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Query, status

from device_runtime.service.deps import Alerts
from device_runtime.service.schemas import DriftEvents, DriftEventView, ErrorBody, Webhook, WebhookRequest

router = APIRouter(prefix="/v1/drift", tags=["drift"])


@router.get("/events", response_model=DriftEvents, summary="Drift alerts after the event id `after`, oldest first: poll this")
def events(alerts: Alerts, after: int = Query(0, ge=0, description="the last event id already seen")) -> DriftEvents:
    found = [DriftEventView(**dataclasses.asdict(e)) for e in alerts.events(after)]
    return DriftEvents(events=found, last=found[-1].id if found else after)


@router.put(
    "/webhook",
    response_model=Webhook,
    summary="POST every future drift event to this loopback URL",
    responses={422: {"model": ErrorBody}},
)
def set_webhook(body: WebhookRequest, alerts: Alerts) -> Webhook:
    alerts.set_webhook(body.url)
    return Webhook(url=alerts.webhook)


@router.get("/webhook", response_model=Webhook, summary="The registered webhook, if any")
def get_webhook(alerts: Alerts) -> Webhook:
    return Webhook(url=alerts.webhook)


@router.delete("/webhook", status_code=status.HTTP_204_NO_CONTENT, summary="Stop posting drift events")
def delete_webhook(alerts: Alerts) -> None:
    alerts.set_webhook(None)
