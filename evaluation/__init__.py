"""Evaluate a model on the `eval` config with the paper's rubric and protocol adherence."""
