"""The ablation plot colours each variant as the table's direction column says."""
import pytest

from flamingo_min.lab import ablate, plots


def _row(values):
    return {"overall": {"mean": sum(values) / len(values), "min": min(values), "max": max(values), "values": values}}


BASE = _row([0.60, 0.65])


@pytest.mark.parametrize("values, colour", [([0.30, 0.35], "tab:green"),    # below: every seed under the baseline's
                                            ([0.80, 0.90], "tab:red"),      # above
                                            ([0.55, 0.62], "tab:gray")])    # within noise: the ranges overlap
def test_ablation_colour_follows_the_direction_ablate_writes(values, colour):
    said = ablate.direction(_row(values), BASE)
    assert plots.direction_colour(said) == colour, said


@pytest.mark.parametrize("said, colour", [("below: as the paper", "tab:green"), ("above: unlike the paper", "tab:red"),
                                          ("within noise", "tab:gray"), ("below (1 seed)", "tab:green"),
                                          ("above (1 seed)", "tab:red"), ("level (1 seed)", "tab:gray"),
                                          ("", "tab:blue")])
def test_ablation_colour_of_every_direction_text(said, colour):
    assert plots.direction_colour(said) == colour


def test_the_ablation_plot_draws_every_direction():
    rows = {"baseline": dict(BASE, direction="")}
    for name, values in (("all-images", [0.30, 0.35]), ("ungated", [0.80, 0.90]), ("lm-scratch", [0.55, 0.62])):
        rows[name] = dict(_row(values), direction=ablate.direction(_row(values), BASE))
    png = plots.ablations(rows, ablate.PAPER_BASELINE, {v.name: v.paper_score for v in ablate.VARIANTS})
    assert png.startswith(b"\x89PNG")
