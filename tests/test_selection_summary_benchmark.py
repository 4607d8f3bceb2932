"""benchmarks/selection_summary.py (the selection benchmarks' regret, Spearman and tables), on constructed records."""

import pytest

from tests.benchmark_module import benchmark_module

CRITERIA = ("loss_thinning", "loss_views", "output_thinning", "output_views")


@pytest.fixture(scope="module")
def bench():
    with benchmark_module("selection_summary.py", "selection_summary_benchmark") as module:
        yield module


def _epochs(thin, views, rmse):
    return [{"epoch": i + 1, "criterion_loss_thinning": t, "criterion_loss_views": v, "criterion_output_thinning": t,
             "criterion_output_views": v, "rmse_hu": r, "rmse_body_hu": r, "rmse_air_hu": r, "ssim": 90.0}
            for i, (t, v, r) in enumerate(zip(thin, views, rmse, strict=True))]


def test_regret_is_the_clean_error_at_the_criterions_choice_over_the_runs_best(bench):
    rows = _epochs([3, 2, 1, 4], [4, 3, 2, 1], [12.0, 11.0, 10.0, 12.5])
    thin, views = bench.regret(rows, "criterion_loss_thinning"), bench.regret(rows, "criterion_loss_views")
    assert (thin["selected_epoch"], thin["regret_percent"]) == (3, 0.0)
    assert thin["spearman_over_epochs"] == pytest.approx(1.0)
    assert views["selected_epoch"] == 4 and views["regret_percent"] == pytest.approx(25.0)
    assert views["spearman_over_epochs"] == pytest.approx(-0.2)


def test_summary_ranks_runs_by_their_selected_checkpoints(bench):
    records = [{"run": f"r{k}", "method": "consensus",
                "epochs": _epochs([5 - k, 6 - k], [1, 2], [10.0 + k, 11.0 + k])} for k in range(3)]
    summary = bench.summarise(records, CRITERIA)
    thin = summary["loss_thinning"]["consensus"]
    # the criterion falls as the clean error rises from run to run: a criterion that ranks runs backwards
    assert thin["spearman_selected"] == pytest.approx(-1.0) and thin["n_runs"] == 3
    assert thin["runs_within_3_percent"] == 3 and summary["output_views"]["consensus"]["n_checkpoints"] == 6
    # so the configuration it keeps is the worst: r2 (12 HU) where r0 has 10 HU
    assert (thin["lowest_criterion_run"], thin["best_clean_run"]) == ("r2", "r0")
    assert thin["lowest_criterion_run_rmse_hu"] == 12.0 and thin["configuration_regret_percent"] == pytest.approx(20.0)


def test_another_clean_error_and_its_table(bench):
    """PET's clean error is ``rmse`` (activity units), without body or SSIM columns at the selection."""
    records = [{"run": f"r{k}", "method": "consensus", "training_split": "thinning",
                "epochs": [{"epoch": e + 1, "criterion_loss_thinning": c, "rmse": r}
                           for e, (c, r) in enumerate([(0.3 + k, 0.02 + k / 100), (0.2 + k, 0.03 + k / 100)])]}
               for k in range(3)]
    summary = bench.summarise(records, ["loss_thinning"], clean="rmse")
    run = summary["loss_thinning"]["runs"]["r0"]
    assert run["selected_epoch"] == 2 and run["best_rmse"] == pytest.approx(0.02)
    assert run["regret_percent"] == pytest.approx(50.0) and "selected_ssim" not in run
    assert summary["loss_thinning"]["consensus"]["spearman_selected"] == pytest.approx(1.0)
    text = bench.markdown({"summary": summary, "runs": records}, ["loss_thinning"], "rmse", "activity", 4)
    assert "| r0 | consensus | thinning | 0.0200 (e1) | 0.0300 (e2), 50.0 %, -1.00 |" in text
    assert ("| loss_thinning | consensus | 3 | +1.00 | +0.68 (6) | 50.0 % | 0 | r0 (0.0300) | r0 (0.0300) | 0.0 % |"
            in text)
