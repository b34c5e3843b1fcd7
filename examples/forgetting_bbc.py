"""A user who labels only two topics: does personalizing keep the other three? (issue 12's figure).

The demo's setup (MiniLM + BBC News, 4 server articles per topic), but the
user's 16 articles per topic come from business and entertainment only. Prints
accuracy over all five topics on 300 held-out articles before and after
``fit`` with the defaults, the per-topic F1, and the guard's verdict. Pass
``--no-replay`` (replay_ratio=0, l2sp=0) to see what training on the user's
data alone does.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from device_runtime import Personalizer, TruncationWarning
from edgeft.config import ExportConfig
from example_data import bbc_news, minilm_path, split_per_class
from export import ServerData, export_bundle

USER_TOPICS = ("business", "entertainment")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="forgetting-output", help="where the bundle goes (default: %(default)s)")
    parser.add_argument("--no-replay", action="store_true", help="train on the user's data alone (replay_ratio=0, l2sp=0)")
    parser.add_argument("--replay-per-class", type=int, default=ExportConfig.replay_per_class)
    args = parser.parse_args()
    warnings.simplefilter("ignore", TruncationWarning)
    texts, labels = bbc_news()
    (server_x, server_y), (user_x, user_y), (test_x, test_y) = split_per_class(texts, labels, [4, 16, 60], seed=0)
    user = [(x, y) for x, y in zip(user_x, user_y) if y in USER_TOPICS]
    bundle = Path(args.out) / "bundle"
    if not bundle.exists():
        config = ExportConfig(name="minilm-bbc", replay_per_class=args.replay_per_class, quantization="int8-dynamic")
        export_bundle(minilm_path(), bundle, data=ServerData(server_x, server_y), config=config)
    device = Personalizer.from_bundle(bundle)
    before = device.evaluate(test_x, test_y)
    controls = {"replay_ratio": 0.0, "l2sp": 0.0} if args.no_replay else {}
    device.fit([x for x, _ in user], [y for _, y in user], **controls)
    after = device.evaluate(test_x, test_y)
    print(f"user's examples: {len(user)} ({', '.join(USER_TOPICS)} only); held-out: {len(test_x)} over 5 topics")
    print(f"accuracy over all topics: {before['accuracy']:.3f} (shipped) -> {after['accuracy']:.3f} (after fit)")
    for i, label in enumerate(device.labels):
        print(f"  F1 {label:<14} {before['per_class_f1'][i]:.2f} -> {after['per_class_f1'][i]:.2f}")
    print(f"guard: {'accepted' if device.report_.accepted else 'refused'}: {device.report_.reason}")
    print(f"replay rows mixed in: {device.report_.replay_examples}, l2sp {device.report_.l2sp}")


if __name__ == "__main__":
    main()
