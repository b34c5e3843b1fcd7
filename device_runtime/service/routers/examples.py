"""POST /v1/examples and GET /v1/examples/count: the device's labelled examples, kept durably."""

from __future__ import annotations

from fastapi import APIRouter, status

from device_runtime.service.deps import Served, Settings, Store
from device_runtime.service.errors import FieldError
from device_runtime.service.schemas import ErrorBody, ExampleCount, ExamplesRequest, ExamplesStored

router = APIRouter(prefix="/v1/examples", tags=["examples"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ExamplesStored,
    summary="Store labelled examples; they are on disk when this answers",
    responses={code: {"model": ErrorBody} for code in (413, 422)},
)
def add_examples(body: ExamplesRequest, served: Served, store: Store, settings: Settings) -> ExamplesStored:
    if len(body.examples) > settings.max_examples_per_request:
        raise FieldError(
            "examples", f"{len(body.examples)} examples in one request; at most {settings.max_examples_per_request} are accepted"
        )
    model = served.slot.personalizer
    known = set(model.labels)
    # Labels the head lacks are stored while spare output slots can take them; a job with new_labels="add" claims them.
    new = {label for label in store.counts_by_label() if label not in known}
    for n, example in enumerate(body.examples):
        if example.label not in known and example.label not in new:
            if len(new) >= model.free_label_slots:
                raise FieldError(
                    f"examples.{n}.label",
                    f"unknown label {example.label!r}; this model's labels are "
                    f"{', '.join(sorted(known))} and its {model.free_label_slots} spare output slot(s) are "
                    "taken (export the bundle with more: --spare-labels)",
                )
            new.add(example.label)
        if len(example.text) > settings.max_text_chars:
            raise FieldError(
                f"examples.{n}.text", f"{len(example.text)} characters; at most {settings.max_text_chars} are accepted"
            )
    total = store.add([e.text for e in body.examples], [e.label for e in body.examples])
    return ExamplesStored(stored=len(body.examples), total=total)


@router.get("/count", response_model=ExampleCount, summary="How many examples are stored, per label")
def count_examples(store: Store) -> ExampleCount:
    by_label = store.counts_by_label()
    return ExampleCount(total=sum(by_label.values()), by_label=by_label)
