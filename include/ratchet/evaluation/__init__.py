"""Judging contenders: walk-forward back-tests, daily now-tests, drift, golden cases and requirements."""
