"""Learning from a model's rows: sources, features and lags, months, baselines, metrics, search, artifacts.

Never imports the registry: everything here works on data frames and fitted estimators.
"""
