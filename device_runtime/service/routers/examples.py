"""POST/DELETE /v1/examples and GET /v1/examples/count: the device's labelled examples, kept durably."""

from __future__ import annotations

from fastapi import APIRouter, Query, status

from device_runtime.service.deps import Served, Settings, Store
from device_runtime.service.errors import FieldError
from device_runtime.service.schemas import ErrorBody, ExampleCount, ExamplesDeleted, ExamplesRequest, ExamplesStored
from device_runtime.service.settings import ServiceSettings
from device_runtime.service.store import stored_tensor
from device_runtime.validation import check_inputs
from edgeft.manifest import InputSpec

router = APIRouter(prefix="/v1/examples", tags=["examples"])
# The example field each modality reads. Image bundles are personalized through the API or the CLI: a batch of
# labelled images outgrows a request body the service should take.
FIELDS = {"text": "text", "tensor": "tensor"}


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
    stored = _stored(body, served.bundle.manifest.input, settings)
    model = served.slot.personalizer
    known = set(model.labels)
    # Labels the head lacks are stored, when asked, while spare output slots can take them; a job with new_labels="add" claims them.
    new = {label for label in store.counts_by_label() if label not in known}
    for n, example in enumerate(body.examples):
        if example.label not in known and example.label not in new:
            _check_new_label(
                example.label, f"examples.{n}.label", body.new_labels, sorted(known), model.free_label_slots, len(new)
            )
            new.add(example.label)
    total = store.add(stored, [e.label for e in body.examples])
    return ExamplesStored(stored=len(body.examples), total=total)


@router.delete(
    "",
    response_model=ExamplesDeleted,
    summary="Delete stored examples: those of one label, or every one",
    responses={422: {"model": ErrorBody}},
)
def delete_examples(
    store: Store, label: str | None = Query(None, min_length=1, description="delete only this label's examples; none: all")
) -> ExamplesDeleted:
    deleted = store.delete(label)
    return ExamplesDeleted(deleted=deleted, total=store.count())


@router.get("/count", response_model=ExampleCount, summary="How many examples are stored, per label")
def count_examples(store: Store) -> ExampleCount:
    by_label = store.counts_by_label()
    return ExampleCount(total=sum(by_label.values()), by_label=by_label)


def _check_new_label(label: str, field: str, new_labels: str, known: list[str], slots: int, taken: int) -> None:
    """A label the model lacks is stored only when asked (new_labels "add") and one of its ``slots`` spare output
    slots is not ``taken`` by the new labels stored already."""
    unknown = f"unknown label {label!r}; this model's labels are {', '.join(known)}"
    if taken >= slots:
        raise FieldError(
            field, f"{unknown} and its {slots} spare output slot(s) are taken (export the bundle with more: --spare-labels)"
        )
    if new_labels != "add":
        raise FieldError(
            field, f'{unknown}; send "new_labels": "add" to store it for one of its {slots - taken} free spare output slot(s)'
        )


def _stored(body: ExamplesRequest, spec: InputSpec, settings: ServiceSettings) -> list[str]:
    """Each example as the store keeps it (a text; a tensor as its JSON), checked as predict checks its inputs.

    Raises:
        FieldError: the bundle's modality takes no examples here, or an example is of another modality or too long.
        DataError: an example the bundle cannot read (a tensor of the wrong shape, NaN or inf), named by its index.
    """
    field = FIELDS.get(spec.modality)
    if field is None:
        raise FieldError(
            "examples",
            f"this bundle's modality is {spec.modality!r}; the service stores text and tensor examples only "
            "(personalize an image bundle with `edgeft personalize` or Personalizer.fit)",
        )
    for n, example in enumerate(body.examples):
        if getattr(example, field) is None:
            raise FieldError(f"examples.{n}", f"this bundle's modality is {spec.modality!r}; send {field} instead")
        if example.text is not None and len(example.text) > settings.max_text_chars:
            raise FieldError(
                f"examples.{n}.text", f"{len(example.text)} characters; at most {settings.max_text_chars} are accepted"
            )
    if field == "tensor":
        check_inputs([e.tensor.array() for e in body.examples if e.tensor is not None], spec)
        return [stored_tensor(e.tensor) for e in body.examples if e.tensor is not None]
    return check_inputs([e.text for e in body.examples if e.text is not None], spec)
