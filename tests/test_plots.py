"""Figures of `crl report` and `crl plot` on awkward real-world inputs: layout (bounding boxes), y ranges, lines
that coincide, titles. Built from synthetic run dirs, so nothing trains and nothing compiles."""
import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.transforms import Bbox

from crl import report, report_plots
from crl.viz.curves import DEFAULT_METRICS, learning_curves, load_runs
from test_report import METRIC, NUM_EPOCHS, curve, records, write_run

PIXEL_TOLERANCE = 1.0  # anti-aliasing may reach a pixel past a box
LONG_ENVS = ("point_u_maze", "point_big_maze", "point_hardest_maze")  # long names give long legend and title text


def drawn(fig):
    """The figure after a draw, with its renderer (bounding boxes are only known after drawing)."""
    fig.canvas.draw()
    return fig, fig.canvas.get_renderer()


def inside(box: Bbox, outer: Bbox) -> bool:
    return (box.x0 >= outer.x0 - PIXEL_TOLERANCE and box.y0 >= outer.y0 - PIXEL_TOLERANCE
            and box.x1 <= outer.x1 + PIXEL_TOLERANCE and box.y1 <= outer.y1 + PIXEL_TOLERANCE)


def assert_everything_inside(fig, renderer):
    """Every panel with its title, labels and drawn tick labels, the suptitle and the legend lie within the
    figure (nothing clipped at an edge)."""
    boxes = {f"panel {i}": ax.get_tightbbox(renderer) for i, ax in enumerate(fig.axes)}
    boxes |= {f"legend {i}": legend.get_window_extent(renderer) for i, legend in enumerate(fig.legends)}
    if fig.get_suptitle():
        boxes["suptitle"] = fig._suptitle.get_window_extent(renderer)
    assert [name for name, box in boxes.items() if not inside(box, fig.bbox)] == []


def assert_legend_below_panels(fig, renderer):
    """One figure legend, below every panel including its tick labels and x label, overlapping none."""
    (legend,) = fig.legends
    assert all(ax.get_legend() is None for ax in fig.axes)
    box = legend.get_window_extent(renderer)
    assert box.y1 <= min(ax.get_tightbbox(renderer).y0 for ax in fig.axes) + PIXEL_TOLERANCE
    return legend


def write_mixed_sweep(root, zero_env: str | None = None, epochs: int = 8):
    """Runs of different configs (env x depth, batch size tied to depth), two seeds each; `zero_env`'s
    runs never reach the goal (time at goal 0 throughout, as on a maze too hard for the budget)."""
    for env in LONG_ENVS:
        for depth in (4, 8):
            for seed in (0, 1):
                values = np.zeros(epochs + 1) if env == zero_env else np.abs(curve(depth, seed, epochs=epochs))
                write_run(root / "runs" / f"{env}-{depth}-{seed}", records(values), env=env, eval_env=f"{env}_eval",
                          critic_depth=depth, actor_depth=depth, batch_size=256 * depth // 4, seed=seed,
                          num_epochs=epochs)
    return root


def cells_of(root, last: int = report.DEFAULT_LAST):
    runs, axes = report.load_sweep(root)
    fields = report.varying_fields(runs, axes)
    cells = report.build_cells(runs, fields, METRIC, last)
    x = report.choose_x(fields, cells, None)
    return cells, x, [f for f in fields if f != x]


# --- grid -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("panels, shape", [(1, (1, 1)), (2, (1, 2)), (3, (1, 3)), (4, (2, 2)), (5, (2, 3)),
                                           (6, (2, 3)), (7, (3, 3))])
def test_grid_is_sized_to_the_panels(panels, shape):
    assert report_plots.grid_shape(panels) == shape
    fig, axes = report_plots.panel_figure(panels)
    assert len(axes) == len(fig.axes) == panels  # no empty panels left in the figure
    assert fig.get_size_inches() == pytest.approx(np.array(report_plots.PANEL_INCHES) * shape[::-1])


# --- crl report over runs of different configs ----------------------------------------------------------------------

def test_mixed_config_report_keeps_titles_legend_and_labels_apart(tmp_path):
    cells, x, groups = cells_of(write_mixed_sweep(tmp_path / "sweep"))
    assert x == "critic_depth" and set(groups) == {"env", "eval_env", "actor_depth", "batch_size"}
    fig, renderer = drawn(report_plots.curves(cells, x, groups, METRIC))
    assert len(fig.axes) == len(LONG_ENVS)
    assert_everything_inside(fig, renderer)
    legend = assert_legend_below_panels(fig, renderer)
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["critic_depth=4, batch_size=256, actor_depth=4 (n=2)",  # each colour once, for all panels
                      "critic_depth=8, batch_size=512, actor_depth=8 (n=2)"]
    titles = [ax.title.get_window_extent(renderer) for ax in fig.axes]
    assert not any(a.overlaps(b) for i, a in enumerate(titles) for b in titles[i + 1:])
    for ax, title in zip(fig.axes, titles):  # each title within its own panel's width
        panel = ax.get_window_extent(renderer)
        assert panel.x0 - PIXEL_TOLERANCE <= title.x0 and title.x1 <= panel.x1 + PIXEL_TOLERANCE
    ylabels = [ax.yaxis.label.get_window_extent(renderer) for ax in fig.axes]
    assert not any(label.overlaps(legend.get_window_extent(renderer)) for label in ylabels)


def test_long_titles_wrap_to_their_panel():
    fig, axes = report_plots.panel_figure(2)
    long = ("env=point_u_maze, eval_env=point_u_maze_eval, total_env_steps=480000, num_epochs=8, "  # a real one
            "min_replay_size=100, sgd_steps_per_train_step=16, num_eval_envs=128")
    for ax in axes:
        report_plots.panel_title(ax, long)
    report_plots.figure_title(fig, long + ", " + long)
    fig, renderer = drawn(fig)
    assert all(ax.get_title().replace("\n", " ") == long and "\n" in ax.get_title() for ax in axes)
    first, second = (ax.title.get_window_extent(renderer) for ax in axes)
    assert not first.overlaps(second)
    for ax in axes:
        panel, title = ax.get_window_extent(renderer), ax.title.get_window_extent(renderer)
        assert panel.x0 - PIXEL_TOLERANCE <= title.x0 and title.x1 <= panel.x1 + PIXEL_TOLERANCE
    assert fig.get_suptitle().count("\n") >= 1 and inside(fig._suptitle.get_window_extent(renderer), fig.bbox)


def test_depth_plot_of_mixed_configs_keeps_its_legend_outside(tmp_path):
    cells, x, groups = cells_of(write_mixed_sweep(tmp_path / "sweep"))
    fig, renderer = drawn(report_plots.final_vs_x(cells, x, groups, METRIC, report.evaluations_text(cells)))
    assert_everything_inside(fig, renderer)
    legend = assert_legend_below_panels(fig, renderer)
    labels = [t.get_text().replace("\n", " ") for t in legend.get_texts()]
    assert "env=point_hardest_maze, eval_env=point_hardest_maze_eval" in labels
    assert [label for label in labels if "random" in label] == [report_plots.DEPTH_BASELINE_LABELS[1]]  # once
    dotted = [line for line in fig.axes[0].get_lines() if line.get_linestyle() == ":"]
    assert len(dotted) == len(LONG_ENVS) + 1  # each group's baseline, plus the legend's sample line


# --- all-zero data ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("metric, bounded", [("eval/episode_success", True), ("eval/random_episode_success", True),
                                             ("eval/avg_episode_length", True), ("eval/episode_dist", True),
                                             ("training/alpha", True), ("time/epoch_s", True),
                                             ("training/alpha_loss", False), ("training/actor_loss", False),
                                             ("training/entropy", False), ("training/logits_pos", False)])
def test_which_metrics_cannot_be_negative(metric, bounded):
    assert report_plots.non_negative(metric) is bounded


def test_all_zero_success_starts_at_zero_and_every_line_shows(tmp_path):
    cells, x, groups = cells_of(write_mixed_sweep(tmp_path / "sweep", zero_env="point_big_maze"))
    fig, _ = drawn(report_plots.curves(cells, x, groups, METRIC))
    zero_panel = next(ax for ax in fig.axes if "point_big_maze" in ax.get_title())
    assert zero_panel.get_ylim() == (0.0, report_plots.EMPTY_RANGE_TOP)
    lines = [line for line in zero_panel.get_lines() if not line.get_label().startswith("_")]
    assert len(lines) == 2 and all(np.all(line.get_ydata() == 0) for line in lines)
    first, second = lines
    assert first.get_marker() != second.get_marker() and first.get_linestyle() != second.get_linestyle()
    assert first.get_linewidth() > second.get_linewidth()  # the one below is wider: it shows around the top one
    assert first.get_markersize() > second.get_markersize()  # markers nest instead of covering each other
    assert all(line.get_markerfacecolor() == "none" and line.get_alpha() < 1 for line in lines)
    assert not any(line.get_clip_on() for line in lines)  # markers at 0 are drawn whole, not cut by the axis
    for ax in fig.axes:
        assert ax.get_ylim()[0] == 0.0


def test_a_metric_that_can_be_negative_keeps_its_range(tmp_path):
    root = tmp_path / "runs"
    for depth in (4, 8):
        rows = [{**r, "training/actor_loss": -1.0 - r["epoch"]} for r in records(curve(depth, 0))]
        write_run(root / f"d{depth}", rows, critic_depth=depth)
    runs, axes = report.load_sweep(root)
    cells = report.build_cells(runs, ["critic_depth"], "training/actor_loss", report.DEFAULT_LAST)
    fig, _ = drawn(report_plots.curves(cells, "critic_depth", [], "training/actor_loss"))
    bottom, top = fig.axes[0].get_ylim()
    assert bottom < -1.0 - NUM_EPOCHS and top < 0  # not forced to start at 0


# --- the depth plot's title -------------------------------------------------------------------------------------

def test_depth_title_gives_the_real_number_of_evaluations(tmp_path):
    short = write_mixed_sweep(tmp_path / "short", epochs=2)  # 3 evaluations per seed (epochs 0, 1, 2)
    cells, x, groups = cells_of(short, last=5)
    assert report.evaluations_text(cells) == "3"
    fig = report_plots.final_vs_x(cells, x, groups, METRIC, report.evaluations_text(cells))
    assert "mean of the last 3 evaluations" in fig.axes[0].get_title().replace("\n", " ")
    write_run(short / "runs" / "long", records(curve(4, 3)), env=LONG_ENVS[0], eval_env=f"{LONG_ENVS[0]}_eval",
              critic_depth=4, actor_depth=4, batch_size=256, seed=3, num_epochs=2)  # 9 evaluations: 5 count
    cells, x, groups = cells_of(short, last=5)
    assert report.evaluations_text(cells) == "3-5"
    assert report.report(short, tmp_path / "out")  # the written report says it too
    assert "(fewer if it has fewer; here 3-5)" in (tmp_path / "out" / "report.md").read_text()


def test_depth_title_with_enough_evaluations_says_last(tmp_path):
    cells, x, groups = cells_of(write_mixed_sweep(tmp_path / "sweep"), last=4)
    fig = report_plots.final_vs_x(cells, x, groups, METRIC, report.evaluations_text(cells))
    assert "mean of the last 4 evaluations" in fig.axes[0].get_title().replace("\n", " ")


# --- crl plot with several runs -------------------------------------------------------------------------------------

def plot_records(depth: int, zero: bool) -> list[dict]:
    """What crl train logs, reduced to crl plot's default metrics: time at goal and three training curves."""
    rows = records(np.zeros(report.DEFAULT_LAST + 1) if zero else np.abs(curve(depth, 0, epochs=5)), random=0.0)
    for row in rows[1:]:
        row.update({"training/actor_loss": -0.5 * row["epoch"], "training/alpha": 0.9 ** row["epoch"]})
    return rows


def write_plot_runs(root, count: int = 4) -> list[str]:
    """`count` one-seed runs with sweep-style long names; all but the first never reach the goal."""
    dirs = []
    for index in range(count):
        env, depth = LONG_ENVS[index % len(LONG_ENVS)], 4 * 2 ** index
        path = root / f"env-{env}__eval_env-{env}_eval__critic_depth-{depth}__actor_depth-{depth}__seed-0"
        write_run(path, plot_records(depth, zero=index > 0), env=env, critic_depth=depth, actor_depth=depth)
        dirs.append(str(path))
    return dirs


def test_plot_of_several_runs_puts_four_panels_on_2x2_with_the_legend_below(tmp_path):
    fig, renderer = drawn(learning_curves(load_runs(write_plot_runs(tmp_path))))
    assert [ax.get_title() for ax in fig.axes] == list(DEFAULT_METRICS)
    assert [ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes] == [(2, 2)] * 4
    assert_everything_inside(fig, renderer)
    legend = assert_legend_below_panels(fig, renderer)
    labels = [t.get_text().replace("\n", "") for t in legend.get_texts()]
    assert len(labels) == 5 and labels[-1] == "random policy (dotted, in each run's colour)"
    assert labels[0].startswith("env-point_u_maze__eval_env-point_u_maze_eval__critic_depth-4")
    ticks = [t.get_window_extent(renderer) for ax in fig.axes for t in ax.get_xticklabels() + ax.get_yticklabels()
             if t.get_text()]
    assert not any(tick.overlaps(legend.get_window_extent(renderer)) for tick in ticks)


def test_plot_suptitle_is_short_and_names_no_run(tmp_path):
    dirs = write_plot_runs(tmp_path)
    fig, renderer = drawn(learning_curves(load_runs(dirs)))
    title = fig.get_suptitle()
    assert title == "learning curves of 4 runs: mean over 1 seed ± s.e."
    assert not any(part in title for part in ("point_u_maze", "critic_depth"))
    assert inside(fig._suptitle.get_window_extent(renderer), fig.bbox)


def test_plot_keeps_success_at_zero_and_coinciding_runs_apart(tmp_path):
    fig, _ = drawn(learning_curves(load_runs(write_plot_runs(tmp_path))))
    success, critic_loss, actor_loss, alpha = fig.axes
    assert success.get_ylim()[0] == 0 and alpha.get_ylim()[0] == 0 and actor_loss.get_ylim()[0] < 0
    zero_lines = [line for line in success.get_lines() if line.get_label().startswith("env-")][1:]
    assert len(zero_lines) == 3 and all(np.all(line.get_ydata() == 0) for line in zero_lines)
    styles = {(line.get_marker(), line.get_linestyle(), line.get_linewidth()) for line in zero_lines}
    assert len(styles) == 3  # three runs at 0 throughout: three different lines, not one colour on top


def test_plot_of_runs_that_never_succeed_shows_0_to_1(tmp_path):
    never = write_plot_runs(tmp_path)[1:]  # time at goal and its random baseline both 0 throughout
    fig, _ = drawn(learning_curves(load_runs(never)))
    assert fig.axes[0].get_ylim() == (0.0, report_plots.EMPTY_RANGE_TOP)


def test_plot_of_runs_with_different_seed_counts_says_so(tmp_path):
    dirs = write_plot_runs(tmp_path, count=1)
    two = tmp_path / "two-seeds"
    write_run(two, seeds={0: plot_records(4, False), 1: plot_records(8, False)}, critic_depth=4)
    fig = learning_curves(load_runs([*dirs, str(two)]))
    assert fig.get_suptitle() == "learning curves of 2 runs: mean over 1-2 seeds ± s.e."


def test_a_run_keeps_its_colour_in_panels_where_another_run_has_no_line(tmp_path):
    first, second = write_plot_runs(tmp_path, count=2)
    rows = [{k: v for k, v in json.loads(line).items() if k != "training/alpha"}
            for line in (Path(first) / "metrics.jsonl").read_text().splitlines()]
    (Path(first) / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    fig = learning_curves(load_runs([first, second]))
    success, *_, alpha = fig.axes
    colour = {ax: {line.get_label(): line.get_color() for line in ax.get_lines()} for ax in (success, alpha)}
    label = next(label for label in colour[alpha] if label.startswith("env-point_big_maze"))
    assert colour[alpha][label] == colour[success][label]
