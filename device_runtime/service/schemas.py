"""Request and response bodies of the service's API.

Predict takes ``texts`` for text bundles, or ``images`` for image bundles:
each image either encoded (``base64`` of a PNG/JPEG file) or as a tensor
(``shape`` and row-major ``data``). Only the field matching the bundle's
modality is accepted.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TensorInput(_Strict):
    shape: list[int] = Field(min_length=1, max_length=4, description="e.g. [3, 224, 224]")
    data: list[float] = Field(description="values in row-major order; their count must equal the shape's product")
    dtype: Literal["float32"] = "float32"

    @model_validator(mode="after")
    def _size_matches_shape(self) -> TensorInput:
        expected = 1
        for dim in self.shape:
            expected *= dim
        if expected != len(self.data):
            raise ValueError(f"shape {self.shape} holds {expected} values, but data has {len(self.data)}")
        return self


class ImageInput(_Strict):
    base64: str | None = Field(None, description="an encoded image file (PNG, JPEG), base64")
    tensor: TensorInput | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageInput:
        if (self.base64 is None) == (self.tensor is None):
            raise ValueError("give exactly one of 'base64' or 'tensor'")
        return self


class PredictRequest(_Strict):
    texts: list[str] | None = Field(None, min_length=1, description="for text bundles")
    images: list[ImageInput] | None = Field(None, min_length=1, description="for image bundles")
    probabilities: bool = Field(True, description="include every label's probability")

    @model_validator(mode="after")
    def _exactly_one(self) -> PredictRequest:
        if (self.texts is None) == (self.images is None):
            raise ValueError("give exactly one of 'texts' or 'images'")
        return self


class Prediction(BaseModel):
    label: str
    probabilities: dict[str, float] | None = None


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    head_version: int  # which head answered: predictions during a job come from the current head


class Example(_Strict):
    text: str = Field(min_length=1)
    label: str = Field(min_length=1)


class ExamplesRequest(_Strict):
    examples: list[Example] = Field(min_length=1)


class ExamplesStored(BaseModel):
    stored: int
    total: int


class ExampleCount(BaseModel):
    total: int
    by_label: dict[str, int]


class PersonalizeRequest(_Strict):
    mode: Literal["fit", "continue"] = Field("fit", description="'fit': from the shipped head; 'continue': from the current head")
    epochs: int | None = Field(None, ge=1, le=1000)
    lr: float | None = Field(None, gt=0, le=1)
    batch_size: int | None = Field(None, ge=1, le=4096)
    seed: int | None = None

    def overrides(self) -> dict[str, Any]:
        return self.model_dump(exclude={"mode"}, exclude_none=True)


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
    versions: Any | None  # Personalizer.versions, where the runtime has it
    metrics: dict[str, Any]  # of the last accepted personalization
    examples: int


class Health(BaseModel):
    status: Literal["ok"]
    head_version: int
    job_running: bool


class ErrorBody(BaseModel):
    """Every error: the error's class, a sentence saying why, and for 422 the fields at fault."""

    error: str
    detail: str
    fields: list[dict[str, str]] | None = None
