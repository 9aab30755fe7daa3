"""Evaluation: responses and per-item scores for named models, aggregation shared by `evaluate` and `compare`."""
