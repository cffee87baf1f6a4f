-- The sweeps' Optuna studies (PRIVSWEEP_STUDY_STORAGE=postgresql://mlflow:...@<host>:5432/optuna),
-- a database apart from MLflow's: both keep their schema version in a table named alembic_version.
-- Run once, when the data volume is created; on an existing volume:
--   docker compose exec postgres createdb -U mlflow optuna
CREATE DATABASE optuna;
