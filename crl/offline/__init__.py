"""Offline goal-conditioned RL data: OGBench-layout datasets (dataset.py) and `crl collect` (collect.py)."""
from crl.offline.dataset import (
    REQUIRED_KEYS,
    Dataset,
    DatasetError,
    load_dataset,
    save_dataset,
    sidecar_path,
)

__all__ = ["REQUIRED_KEYS", "Dataset", "DatasetError", "load_dataset", "save_dataset", "sidecar_path"]
