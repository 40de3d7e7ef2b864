-- Ratchet's registry lives in its own database beside Airflow's metadata database.
CREATE DATABASE ratchet;
