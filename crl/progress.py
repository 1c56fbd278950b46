"""Epoch progress of a run: a live bar on a terminal (rich), one plain line per epoch otherwise (logs, SLURM)."""
from __future__ import annotations

import sys
from typing import Callable

from crl.run import format_duration, progress_line

REFRESH_PER_SECOND = 2  # the bar redraws itself this often between epochs (ticking the elapsed time)


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


class EpochProgress:
    """update(epoch, record, eta_s) after each epoch; close() at the end (also on errors).

    `live` draws a rich bar with the compile time, env steps/s, the headline metric and the ETA;
    otherwise each update is one `progress_line` through `say`.
    """

    def __init__(self, say: Callable[[str], None], num_epochs: int, start_epoch: int, headline: str,
                 compile_s: float, live: bool, console=None):
        self.say, self.num_epochs, self.headline = say, num_epochs, headline
        self._bar = None
        if not live:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        label = headline.removeprefix("eval/")
        self._bar = Progress(
            TextColumn("[bold]epoch"), MofNCompleteColumn(), BarColumn(), TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"), TextColumn("{task.fields[rate]}"),
            TextColumn(f"{label} {{task.fields[metric]}}"), TextColumn(f"compile {compile_s:.1f} s"),
            console=console or Console(), refresh_per_second=REFRESH_PER_SECOND, transient=False)
        self._task = self._bar.add_task("train", total=num_epochs, completed=start_epoch, eta="?", rate="-",
                                        metric="-")
        self._bar.start()

    def update(self, epoch: int, record: dict[str, float], eta_s: float) -> None:
        if self._bar is None:
            self.say(progress_line(epoch, self.num_epochs, record, self.headline, eta_s))
            return
        self._bar.update(self._task, completed=epoch, eta=format_duration(eta_s),
                         rate=_bar_rate(record),
                         metric=f"{record.get(self.headline, float('nan')):.2f}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _bar_rate(record: dict[str, float]) -> str:
    """'4,321 env steps/s', or SGD steps/s for an offline run (no env steps)."""
    if "training/sps" not in record and "training/sgd_steps_per_s" in record:
        return f"{record['training/sgd_steps_per_s']:,.0f} SGD steps/s"
    return f"{record.get('training/sps', float('nan')):,.0f} env steps/s"
