"""POST /v1/predict: labels (and probabilities) from the current head."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
from fastapi import APIRouter

from device_runtime.service.deps import Served, Settings
from device_runtime.service.errors import FieldError
from device_runtime.service.schemas import ErrorBody, ImageInput, Prediction, PredictRequest, PredictResponse

# The request field each modality reads.
FIELDS = {"text": "texts", "image": "images", "tensor": "tensors"}

router = APIRouter(prefix="/v1", tags=["predict"])


@router.post(
    "/predict",
    response_model=PredictResponse,
    summary="Predict labels with the current head",
    responses={code: {"model": ErrorBody} for code in (409, 413, 422)},
)
def predict(body: PredictRequest, served: Served, settings: Settings) -> PredictResponse:
    modality = served.bundle.manifest.input.modality
    field = next(f for f in FIELDS.values() if getattr(body, f) is not None)
    if field != FIELDS[modality]:
        raise FieldError(field, f"this bundle's modality is {modality!r}; send {FIELDS[modality]} instead")
    inputs = _inputs(body)
    if len(inputs) > settings.max_batch:
        raise FieldError(field, f"{len(inputs)} inputs in one request; at most {settings.max_batch} are accepted")
    for n, text in enumerate(body.texts or []):
        if len(text) > settings.max_text_chars:
            raise FieldError(f"texts.{n}", f"{len(text)} characters; at most {settings.max_text_chars} are accepted")
    proba, labels, head_version = served.predict_proba(inputs)
    predictions = [
        Prediction(
            label=labels[int(p.argmax())],
            probabilities={label: round(float(v), 6) for label, v in zip(labels, p)} if body.probabilities else None,
        )
        for p in proba
    ]
    return PredictResponse(predictions=predictions, head_version=head_version)


def _inputs(body: PredictRequest) -> list[Any]:
    """The request's examples as the runtime takes them (it checks them as it checks any caller's)."""
    if body.texts is not None:
        return body.texts
    if body.tensors is not None:
        return [t.array() for t in body.tensors]
    return [_decode(i, n) for n, i in enumerate(body.images or [])]


def _decode(image: ImageInput, n: int) -> np.ndarray:
    """An image as the runtime takes it: uint8 pixels of the given shape."""
    if image.data is not None:
        return np.asarray(image.data, dtype=np.uint8).reshape(image.shape)
    try:
        raw = base64.b64decode(image.base64 or "", validate=True)
    except binascii.Error as e:
        raise FieldError(f"images.{n}.base64", f"not valid base64 ({e})") from e
    expected = int(np.prod(image.shape))
    if len(raw) != expected:
        raise FieldError(f"images.{n}.base64", f"{len(raw)} bytes, but shape {image.shape} holds {expected} uint8 pixels")
    return np.frombuffer(raw, dtype=np.uint8).reshape(image.shape)
