"""A CRL_PLUGINS module for tests/test_slurm.py, through crl's public plugin hook (every `crl` command imports
CRL_PLUGINS first, and a sweep's runs inherit the variable), so no test switch lives inside crl:

- CRL_TEST_FAIL_RUN=RUN_ID: `crl train` of that run crashes (an injected failure);
- CRL_TEST_EPOCH_PACE_S=S: `crl train` sleeps S seconds after each epoch's record. A run then spans SLURM's
  30-second time-limit checks in wall time without keeping a core busy; what it computes is unchanged.
"""
import os
import sys
import time

FAIL_RUN_VAR = "CRL_TEST_FAIL_RUN"
PACE_VAR = "CRL_TEST_EPOCH_PACE_S"

_target = os.environ.get(FAIL_RUN_VAR)
if _target and "train" in sys.argv and any(arg.rstrip("/").endswith(f"/{_target}") for arg in sys.argv):
    raise RuntimeError(f"injected failure for run {_target} ({FAIL_RUN_VAR})")

if os.environ.get(PACE_VAR) and "train" in sys.argv:
    from crl.progress import EpochProgress

    _pace_s = float(os.environ[PACE_VAR])
    _update = EpochProgress.update

    def _paced_update(self, *args, **kwargs):
        _update(self, *args, **kwargs)
        time.sleep(_pace_s)

    EpochProgress.update = _paced_update
