"""Progress output: a live bar with the run's figures on a terminal, plain lines elsewhere."""
import io

from rich.console import Console

from crl.progress import EpochProgress
from crl.run import progress_line

HEADLINE = "eval/episode_success"
RECORD = {"env_steps": 123_456, "training/sps": 4321.0, HEADLINE: 12.5, "training/critic_loss": 3.25}


def test_plain_lines_when_not_a_terminal():
    lines = []
    progress = EpochProgress(lines.append, 10, 0, HEADLINE, compile_s=4.2, live=False)
    progress.update(3, RECORD, eta_s=75)
    progress.close()
    assert lines == [progress_line(3, 10, RECORD, HEADLINE, 75)]
    assert "episode_success    12.50" in lines[0] and "ETA 1m15s" in lines[0]


def test_live_bar_shows_compile_time_speed_metric_and_eta():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system=None)
    lines = []
    progress = EpochProgress(lines.append, 10, 2, HEADLINE, compile_s=4.2, live=True, console=console)
    progress.update(3, RECORD, eta_s=75)
    progress.close()
    shown = [line for line in out.getvalue().splitlines() if "epoch" in line][-1]  # the final redraw
    assert lines == []  # the bar replaces the per-epoch lines
    for part in ("epoch", "3/10", "ETA 1m15s", "4,321 env steps/s", "episode_success 12.50", "compile 4.2 s"):
        assert part in shown, (part, shown)
