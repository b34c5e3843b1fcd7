"""Request and response bodies of the service's API.

Predict takes ``texts`` for text bundles, ``images`` for image bundles:
each image its uint8 pixels and their ``shape``, as a list (``data``) or as
raw bytes (``base64``); the device resizes and normalizes them as the bundle
says; or ``tensors`` for tensor bundles: each window or row its float values
(``data``, row-major) and ``shape``. Only the field matching the bundle's
modality is accepted. A labelled example is a ``text`` or a ``tensor`` the same way.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from edgeft import http_errors
from edgeft.config import NewLabels, TrainConfig
from edgeft.fields import SERVICE, exposed


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


MAX_IMAGE_SIDE = 16384  # pixels per side; larger sides cannot fit in a request body anyway


class ImageInput(_Strict):
    shape: list[Annotated[int, Field(ge=1, le=MAX_IMAGE_SIDE)]] = Field(
        min_length=2, max_length=3, description="[height, width] for grey, [height, width, channels] with 1 or 3 (RGB) channels"
    )
    data: list[int] | None = Field(None, description="uint8 pixel values 0..255, row-major")
    base64: str | None = Field(None, description="the same pixels as raw uint8 bytes, base64 (a third of the JSON size)")

    @model_validator(mode="after")
    def _pixels_match_shape(self) -> ImageInput:
        if (self.base64 is None) == (self.data is None):
            raise ValueError("give exactly one of 'data' or 'base64'")
        if len(self.shape) == 3 and self.shape[2] not in (1, 3):
            raise ValueError(f"shape {self.shape} has {self.shape[2]} channels; 1 (grey) or 3 (RGB) are read")
        if self.data is not None:
            expected = int(np.prod(self.shape))
            if expected != len(self.data):
                raise ValueError(f"shape {self.shape} holds {expected} pixels values, but data has {len(self.data)}")
            if any(not 0 <= v <= 255 for v in self.data):
                raise ValueError("pixel values must be in 0..255 (uint8)")
        return self


# Values in one tensor: a minute of 6-axis motion at 100 Hz is 36,000; the body's byte limit binds first anyway.
MAX_TENSOR_VALUES = 100_000


class TensorInput(_Strict):
    shape: list[int] = Field(
        min_length=1, max_length=2, description="[channels, steps] for a window, [features] for a row (as the bundle says)"
    )
    data: list[float] = Field(min_length=1, max_length=MAX_TENSOR_VALUES, description="the values, row-major")

    @model_validator(mode="after")
    def _values_match_shape(self) -> TensorInput:
        if any(d < 1 for d in self.shape):
            raise ValueError(f"shape {self.shape} must hold positive sizes")
        expected = int(np.prod(self.shape))
        if expected != len(self.data):
            raise ValueError(f"shape {self.shape} holds {expected} values, but data has {len(self.data)}")
        return self

    def array(self) -> np.ndarray:
        """The values as the runtime takes them (float32 of the given shape; the runtime checks them as any caller's)."""
        return np.asarray(self.data, dtype=np.float32).reshape(self.shape)


class PredictRequest(_Strict):
    texts: list[str] | None = Field(None, min_length=1, description="for text bundles")
    images: list[ImageInput] | None = Field(None, min_length=1, description="for image bundles")
    tensors: list[TensorInput] | None = Field(None, min_length=1, description="for tensor bundles")
    probabilities: bool = Field(True, description="include every label's probability")

    @model_validator(mode="after")
    def _exactly_one(self) -> PredictRequest:
        if sum(field is not None for field in (self.texts, self.images, self.tensors)) != 1:
            raise ValueError("give exactly one of 'texts', 'images' or 'tensors'")
        return self


class Prediction(BaseModel):
    label: str
    probabilities: dict[str, float] | None = None


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    head_version: int  # which head answered: predictions during a job come from the current head


class Example(_Strict):
    text: str | None = Field(None, min_length=1, description="for text bundles")
    tensor: TensorInput | None = Field(None, description="for tensor bundles: a window or row, as predict takes it")
    label: str = Field(min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> Example:
        if (self.text is None) == (self.tensor is None):
            raise ValueError("give exactly one of 'text' or 'tensor'")
        return self


class ExamplesRequest(_Strict):
    examples: list[Example] = Field(min_length=1)
    new_labels: NewLabels = Field(
        NewLabels.REFUSE,
        description="'refuse': a label the model lacks is a 422; 'add': stored while the bundle has spare output slots "
        "for it (a job with new_labels 'add' then teaches it)",
    )


class ExamplesStored(BaseModel):
    stored: int
    total: int


class ExamplesDeleted(BaseModel):
    deleted: int
    total: int


class ExampleCount(BaseModel):
    total: int
    by_label: dict[str, int]


def _settings(cls: type, front_end: str) -> dict[str, Any]:
    """Optional request fields (None: the bundle's value) made from the settings' declarations (edgeft.fields):
    their types, ranges and help, each capped at its declared limit for an untrusted caller."""
    fields = {}
    for d in exposed(cls, front_end):
        s = d.setting
        le = min((b for b in (s.le, s.limit) if b is not None), default=None)
        finite = {"allow_inf_nan": False} if d.kind is float else {}
        default = s.none if d.default is None else getattr(d.default, "value", d.default)
        described = f"{s.help} (unset: the bundle's; {cls.__name__}'s is {default})"
        fields[d.name] = (d.kind | None, Field(None, ge=s.ge, gt=s.gt, le=le, lt=s.lt, description=described, **finite))
    return fields


class PersonalizeRequest(create_model("TrainSettings", __base__=_Strict, **_settings(TrainConfig, SERVICE))):
    """A job's TrainConfig overrides (those the service offers), for this job only, and how it starts."""

    mode: Literal["fit", "continue"] = Field("fit", description="'fit': from the shipped head; 'continue': from the current head")
    new_labels: NewLabels = Field(NewLabels.REFUSE, description=NewLabels.__doc__)

    def overrides(self) -> dict[str, Any]:
        """This job's TrainConfig overrides, for this job only."""
        return self.model_dump(exclude={"mode", "new_labels"}, exclude_none=True, mode="json")


class JobView(BaseModel):
    id: str
    mode: str
    status: Literal["queued", "running", "succeeded", "failed"]
    stage: str | None
    done: int
    total: int
    loss: float | None
    result: dict[str, Any] | None
    error: str | None
    created: str
    finished: str | None
    trigger: Literal["request", "drift"] = "request"


class RollbackRequest(_Strict):
    to_version: int | None = Field(None, ge=0, description="head version to return to; None: the previous one")


class BundleInfo(BaseModel):
    name: str
    version: str
    fingerprint: str
    modality: str
    labels: list[str]
    metrics: dict[str, Any]  # measured at export


class ModelInfo(BaseModel):
    bundle: BundleInfo
    head_version: int
    versions: list[dict[str, Any]]  # Personalizer.versions: every head kept, with its metrics
    report: dict[str, Any]  # Personalizer.report_ of the served head's last personalization
    examples: int


class Health(BaseModel):
    status: Literal["ok"]
    head_version: int
    job_running: bool


ErrorBody = http_errors.ErrorBody  # one error shape for both apps


class DriftEventView(BaseModel):
    id: int
    created: str
    report: dict[str, Any]  # Personalizer.drift_report() at the check that raised it
    webhook: str  # "delivered", "failed: why", or "none registered"
    policy: str  # what the retraining policy did, in words
    job_id: str | None


class DriftEvents(BaseModel):
    events: list[DriftEventView]
    last: int  # the newest event's id (0: none yet); poll again with after=last


class WebhookRequest(_Strict):
    url: str = Field(description="http(s) URL on a loopback address; each drift event is POSTed to it as JSON")


class Webhook(BaseModel):
    url: str | None
