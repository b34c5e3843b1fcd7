"""Labels added on the device: spare output slots of the head, claimed in order.

The exporter reserves ``spare_labels`` output slots after the bundle's labels
(ExportConfig.spare_labels, ``edgeft export --spare-labels``), so the ORT
artifacts keep their shapes when a device adds a label. An unclaimed slot is
masked twice: its logits are cut off before any softmax or argmax (scoring),
and its bias ships at ``SPARE_BIAS``, so that its softmax share, its gradient
and hence its AdamW step are zero and training the other labels never sees it.
Claiming a slot resets its weights, bias and L2-SP anchor to zero.
"""

from __future__ import annotations

from collections.abc import Iterable

from device_runtime.validation import check_encodable
from edgeft.errors import DataError, DataTypeError

# An unclaimed slot's bias: exp(-1e4) is 0 in float32, so the slot takes no part in the loss.
SPARE_BIAS = -1e4


def claim_labels(known: list[str], wanted: Iterable[str], free: int, claimed: list[str]) -> list[str]:
    """``claimed`` plus every label of ``wanted`` not in ``known``, in order of first appearance.

    Args:
        known: the labels the head has now (the bundle's, then those claimed).
        wanted: labels to have; known ones are skipped.
        free: spare output slots still free.
        claimed: the labels claimed so far.

    Raises:
        DataError: a label is not a non-empty string of valid Unicode, or the new ones outnumber the free slots.
    """
    if isinstance(wanted, (str, bytes)) or not isinstance(wanted, Iterable):
        raise DataTypeError(f"Labels must be a list of strings, got {type(wanted).__name__}.")
    new: list[str] = []
    for label in wanted:
        if not isinstance(label, str) or not label:
            raise DataError(f"A label must be a non-empty string, got {label!r}.")
        if not label.isascii():
            check_encodable(label, f"The label {label!r}")
        if label not in known and label not in new:
            new.append(label)
    if len(new) > free:
        raise DataError(
            f"{len(new)} new label(s) {new[:5]} need an output slot each, but the head has {free} free "
            f"(its bundle reserved {free + len(claimed)} spare slot(s), {len(claimed)} claimed). "
            "Re-export the bundle with more (`edgeft export --spare-labels N`, ExportConfig(spare_labels=N))."
        )
    return [*claimed, *new]


def unknown_label_fix(free: int) -> str:
    """The advice a device's DataError gives for labels the head does not have."""
    if free == 0:
        return "the bundle has no free spare output slot, so re-export it with those labels (or with --spare-labels)"
    return (
        f'pass new_labels="add" to fit/partial_fit (or call add_labels; `edgeft personalize --new-labels add`) '
        f"to teach the head a label of your own ({free} free output slot(s)), or re-export the bundle with those labels"
    )
