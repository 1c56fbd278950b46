"""config.yaml of a run dir: a resume keeps the launch command and records each resume beside it."""
import sys

import yaml

from crl.config import plan_steps, to_dict
from crl.run import RunLogger
from tiny_run import tiny_config

EPISODE = 100  # point_u_maze's episode length (only the step plan written beside the config needs it)
LAUNCH = ["crl", "train", "--config", "quickstart", "--run-dir", "RUN"]
RESUMES = [["crl", "train", "--resume", "RUN", "--num-epochs", "4"], ["crl", "train", "--resume", "RUN"]]


def write_config(run_dir, monkeypatch, argv, resume_epoch=None, **changes):
    """What `crl train` writes at start (argv is its command line); no training."""
    cfg = tiny_config(**changes)
    monkeypatch.setattr(sys, "argv", argv)
    RunLogger(run_dir, cfg, plan_steps(cfg, EPISODE), resume_epoch=resume_epoch).close()
    return yaml.safe_load((run_dir / "config.yaml").read_text())


def test_resumes_keep_the_launch_command_and_list_their_own(tmp_path, monkeypatch):
    assert write_config(tmp_path, monkeypatch, LAUNCH)["command"] == " ".join(LAUNCH)
    write_config(tmp_path, monkeypatch, RESUMES[0], resume_epoch=2, num_epochs=4)
    saved = write_config(tmp_path, monkeypatch, RESUMES[1], resume_epoch=3, num_epochs=4)
    assert saved["command"] == " ".join(LAUNCH)
    assert [resume["command"] for resume in saved["resumes"]] == [" ".join(argv) for argv in RESUMES]
    assert [resume["from_epoch"] for resume in saved["resumes"]] == [2, 3]
    assert [resume["changed"] for resume in saved["resumes"]] == [{"num_epochs": [2, 4]}, {}]
    assert saved["config"] == to_dict(tiny_config(num_epochs=4))
