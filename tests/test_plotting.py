"""Loss-curve smoothing and the ablation's loss figure."""
import matplotlib
import matplotlib.pyplot as plt

matplotlib.use("Agg")

from course_utils import plotting  # noqa: E402
from course_utils.reports import loss_panels  # noqa: E402


def test_smooth_is_unbiased_at_the_start_and_has_no_cliff():
    assert max(abs(v - 0.5) for v in plotting.smooth([0.5] * 20, 50)) < 1e-12  # a flat loss stays flat from step 1
    # one huge first loss, then a flat 1: a trailing 50-step mean would drop by (10 - 1) / 50 at step 51; the EMA
    # falls a little at every step instead and never rises
    sm = plotting.smooth([10.0] + [1.0] * 199, 50)
    drops = [a - b for a, b in zip(sm, sm[1:])]
    assert min(drops) >= 0 and max(drops[40:]) < 0.05 and abs(sm[-1] - 1.0) < 0.01


def test_loss_legend_gives_the_mean_of_the_last_window_and_moves_out_of_the_way_when_crowded():
    losses = [1.0 / (i + 1) for i in range(300)]
    fig = plotting.plot_losses({"a": losses})
    assert fig.axes[0].get_legend().get_texts()[0].get_text() == f"a (last 50: {sum(losses[-50:]) / 50:.4f})"
    ax = plotting.plot_losses({f"p{k}": losses for k in range(12)}).axes[0]
    assert ax.get_legend().get_bbox_to_anchor().x0 >= ax.bbox.x1, "12 curves: the legend goes beside the axes"
    assert len({line.get_color() for line in ax.get_lines()}) == 12, "every curve gets its own colour"


def test_ablation_loss_figure_splits_ladder_and_leave_one_out():
    h = [1.0, 0.5, 0.25]
    fig = loss_panels({"baseline": h, "optimized": h, "no_gelu": h, "no_width": h})
    left, right = (ax.get_legend().get_texts() for ax in fig.axes)
    assert [t.get_text().split()[0] for t in left] == ["baseline", "optimized"]
    assert [t.get_text().split()[0] for t in right] == ["optimized", "no_gelu", "no_width"]


def teardown_function():
    plt.close("all")
