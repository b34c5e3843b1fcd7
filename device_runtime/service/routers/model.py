"""GET /v1/model, POST /v1/rollback, GET /v1/drift: what is served, and undoing it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from device_runtime.drift import DEFAULT_THRESHOLD
from device_runtime.service.deps import Served, Store
from device_runtime.service.schemas import BundleInfo, ErrorBody, ModelInfo, RollbackRequest

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/model", response_model=ModelInfo, summary="The bundle, the head version and its metrics")
def get_model(served: Served, store: Store) -> ModelInfo:
    return _info(served, store)


@router.post(
    "/rollback",
    response_model=ModelInfo,
    summary="Return to an earlier head version (0: the shipped head)",
    responses={422: {"model": ErrorBody}},
)
def rollback(served: Served, store: Store, body: RollbackRequest | None = None) -> ModelInfo:
    served.rollback((body or RollbackRequest()).to_version)
    return _info(served, store)


@router.get(
    "/drift",
    summary="Personalizer.drift_report(): how the device's inputs moved away from the bundle's",
    responses={400: {"model": ErrorBody}},
)
def drift(
    served: Served,
    threshold: float = Query(DEFAULT_THRESHOLD, gt=0, description="feature shift counted as drift"),
) -> dict[str, Any]:
    return served.drift_report(threshold)


def _info(served: Served, store: Store) -> ModelInfo:
    slot = served.slot
    m = slot.personalizer.bundle.manifest
    bundle = BundleInfo(
        name=m.name,
        version=m.version,
        fingerprint=slot.personalizer.bundle.fingerprint,
        modality=m.input.modality,
        labels=m.labels,
        metrics=m.metrics,
    )
    return ModelInfo(
        bundle=bundle,
        head_version=slot.head_version,
        versions=slot.personalizer.versions,
        report=slot.personalizer.report_.to_dict() if slot.personalizer.report_ else {},
        examples=store.count(),
    )
