"""The Ratchet page inside the Airflow UI (a FastAPI app mounted by plugins/ratchet_plugin.py)."""
