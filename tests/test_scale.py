"""The scale study (lab/scale.py): every size and seed trained, binding read at every shot count, the record, the
table and the figure; a second call reuses what the first trained and evaluated."""
import json
import os

import pytest

from conftest import TINY_RUN
from flamingo_min.lab import scale
from toy_data.tasks import RICH_TASKS

SIZES = {"narrow": (), "wide": ("model.d_model=48",)}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("scale"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scale, "SIZES", SIZES)
        result = scale.run(out, ("narrow", "wide"), seeds=(0, 1), episodes=3, preset="quick", overrides=TINY_RUN,
                           progress=False, say=lambda s: None)
    return out, result


def test_every_size_seed_task_and_shot_is_recorded(study):
    out, result = study
    assert json.load(open(os.path.join(out, "scale.json"))) == json.loads(json.dumps(result))
    assert os.path.getsize(os.path.join(out, "scale.png")) > 0
    assert result["held_out"] == list(RICH_TASKS)          # quick trains binding in the plain form alone
    narrow, wide = result["sizes"]["narrow"], result["sizes"]["wide"]
    assert narrow["params"]["lm"] < wide["params"]["lm"] and narrow["params"]["bridge"] < wide["params"]["bridge"]
    assert wide["overrides"][-1] == "model.d_model=48"
    for r in (narrow, wide):
        assert set(r["seeds"]) == {"0", "1"}
        for s in r["seeds"].values():
            assert set(s["scores"]) == {f"{t}/{m}" for t in scale.TASKS for m in ("open", "closed")}
            assert all(list(cells) == list(scale.SHOTS) for cells in s["scores"].values())
            assert set(s["seconds"]) == {"lm", "vision", "flamingo"} and all(v > 0 for v in s["seconds"].values())
    assert set(result["ideal"]) == set(scale.SHOTS) and result["ideal"]["1"] == 1.0    # one example: it is the answer


def test_the_table_reads_the_means_and_spreads_of_the_record(study):
    _, result = study
    seeds = result["sizes"]["wide"]["seeds"].values()
    four = [s["scores"]["bind/closed"]["4"] for s in seeds]
    held16 = [scale.held_out_mean(s["scores"], result["held_out"], "16") for s in seeds]
    row = next(line for line in scale.table(result).splitlines() if line.startswith("wide"))
    assert f"{sum(four) / 2:.2f} ({max(four) - min(four):.2f})" in row
    assert f"{sum(held16) / 2:.2f} ({max(held16) - min(held16):.2f})" in row


def test_a_second_call_reuses_every_run_and_evaluation(study, monkeypatch):
    out, result = study
    monkeypatch.setattr(scale, "SIZES", SIZES)
    monkeypatch.setattr(scale, "evaluate", lambda *a, **k: pytest.fail("evaluated a second time"))
    again = scale.run(out, ("narrow", "wide"), seeds=(0, 1), episodes=3, preset="quick", overrides=TINY_RUN,
                      progress=False, say=lambda s: pytest.fail(f"trained a second time: {s}")
                      if "training" in s else None)
    assert again == result
