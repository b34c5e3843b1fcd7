"""One router per resource: reading bundles, and publishing them."""
