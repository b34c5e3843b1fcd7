"""One router per resource: predictions, examples, jobs, the model, health."""
