"""The bundle's layout: its format version and the file names inside a bundle folder, in one place.

Layout (format version 1)::

    manifest.json                 the manifest (edgeft.manifest), with a size and sha256 per file
    backbone.onnx                 frozen feature extractor, an inference model
    tokenizer.json                text bundles only (Hugging Face tokenizers)
                                  (image and tensor bundles carry their
                                  preprocessing in the manifest's ``input`` instead)
    head/training_model.onnx      ORT training artifacts of the head, whose
    head/eval_model.onnx          input is the backbone's feature vector; in a
                                  fused bundle (head.backbone_blocks > 0) they
                                  also hold the backbone's last blocks, and the
                                  backbone file holds the blocks below them
    head/optimizer_model.onnx
    head/checkpoint               the shipped head (version 0)
    head/parameters.npz           optional: the same head as numpy arrays (its
                                  trainable parameters)
    head/step_model.onnx          optional: one training step (forward, backward,
    head/step_eval_model.onnx     AdamW) and the forward pass as plain ONNX graphs
                                  with the parameters as inputs, which any
                                  onnxruntime runs (export.step_graph)
    head/labels.json              the labels in the head's output order, beside
                                  the head and checksummed with it: a label list
                                  edited in the manifest alone no longer loads
    head/replay.npz               optional: server examples' head-input features
                                  (``features``, float32) and label indices
                                  (``labels``, int64), class-balanced: the device
                                  trains on them beside the user's examples
    head/guard.npz                optional: the same for held-out server examples
                                  no head trained on; the guard judges every label on them
    reference.json                optional: export-time statistics for drift checks
    reference_sample.npz          optional: a bounded random sample of export-time drift
                                  features and confidences, for the windowed drift test
    fleet.json                    optional: provenance of a head learned by a fleet
    manifest.sig                  optional: the publisher's Ed25519 signature of
                                  manifest.json's bytes (edgeft.signing); not
                                  listed in the manifest, which it covers

"""

FORMAT_VERSION = 1

MANIFEST = "manifest.json"
BACKBONE = "backbone.onnx"
TOKENIZER = "tokenizer.json"
TRAINING_MODEL = "head/training_model.onnx"
EVAL_MODEL = "head/eval_model.onnx"
OPTIMIZER_MODEL = "head/optimizer_model.onnx"
CHECKPOINT = "head/checkpoint"

HEAD_FILES = (TRAINING_MODEL, EVAL_MODEL, OPTIMIZER_MODEL, CHECKPOINT)  # ORT's training artifacts (head.ort_artifacts)
# Optional files (bundles without them still load):
PARAMETERS = "head/parameters.npz"  # the shipped head's parameters, for engines without ORT training
REFERENCE = "reference.json"  # feature and confidence statistics at export, for drift checks
LABELS = "head/labels.json"  # optional (bundles exported before it load): the labels, checksummed with the head
SIGNATURE = "manifest.sig"  # beside the manifest, never listed in it: it signs the manifest's bytes
REFERENCE_SAMPLE = "reference_sample.npz"  # at most REFERENCE_SAMPLE_ROWS export-time drift features, for the windowed test
REFERENCE_SAMPLE_ROWS = 500  # bounds the file (0.8 MB of MiniLM features, 2.6 MB of EfficientNet's) and the test's cost
FLEET = "fleet.json"  # a federated head's provenance: rounds, devices, examples, aggregation, privacy
STEP_MODEL = "head/step_model.onnx"  # one training step in standard ONNX operators, head.step_batch rows
STEP_EVAL_MODEL = "head/step_eval_model.onnx"  # the forward pass with the trainable parameters as inputs
REPLAY = "head/replay.npz"  # server features and labels the device mixes into training
GUARD = "head/guard.npz"  # held-out server features and labels (never trained on) the device's guard judges heads on
