"""Binding read apart by how often the prompt shows the answer's label (flamingo_min/lab/repeats.py), on the tiny
run, its close-ended scores replaced by readers whose answers are known."""
from collections import Counter

import pytest

from flamingo_min import evaluate
from flamingo_min.errors import EvalError
from flamingo_min.lab import repeats
from flamingo_min.runs import load_run
from toy_data import TOKENIZER


def test_parts_are_once_twice_and_more():
    assert [repeats.part(n) for n in (1, 2, 3, 7)] == ["1", "2", "3+", "3+"]


def counting_reader(model, prompts, media, candidates):
    """Close-ended scores that count each candidate in the prompt: a reader pulled by counts alone."""
    return [[p.count(TOKENIZER.ids[c]) + 0.1 * i for i, c in enumerate(cands)] for p, cands in zip(prompts, candidates)]


def test_a_reader_that_counts_is_read_apart_as_it_answers(tiny_run, monkeypatch):
    monkeypatch.setattr(evaluate, "rank_candidates", counting_reader)
    model, cfg = load_run(tiny_run)
    result = repeats.read(model, cfg.data, shots=("4", "8"), episodes=30, seed=5)
    eps = evaluate.episodes_for("bind", 30, cfg.data, 5, 32)
    for shot, r in result["shots"].items():
        parts = {}
        for ep in eps:
            shown = Counter(e.answer for e in ep.support(int(shot)))
            said = max(ep.candidates, key=lambda c: shown[c] + 0.1 * ep.candidates.index(c))
            parts.setdefault(repeats.part(shown[ep.query.answer]), []).append(
                (said == ep.query.answer, shown[said] > shown[ep.query.answer]))
        assert set(r["parts"]) == set(parts)
        assert sum(c["episodes"] for c in r["parts"].values()) == 30
        for p, rows in parts.items():
            assert r["parts"][p]["accuracy"] == pytest.approx(sum(ok for ok, _ in rows) / len(rows))
            wrong = [pulled for ok, pulled in rows if not ok]
            assert r["parts"][p]["pulled"] == (pytest.approx(sum(wrong) / len(wrong)) if wrong else None)
        assert 0 <= r["ideal"] <= 1
    once = result["shots"]["4"]["parts"]["1"]
    assert once["accuracy"] < 0.5 and once["pulled"] > once["pulled by chance"]   # counting loses a label shown once
    assert "label shown 3+x" in repeats.table(result)


def test_an_oracle_reads_one_everywhere_and_no_wrong_answer(tiny_run, monkeypatch):
    monkeypatch.setattr(repeats, "closed_at", lambda model, eps, *a: [ep.query.answer for ep in eps])
    model, cfg = load_run(tiny_run)
    result = repeats.read(model, cfg.data, shots=("2", "16"), episodes=12, seed=1)
    for r in result["shots"].values():
        assert r["all"] == 1.0 and all(c["accuracy"] == 1.0 and c["pulled"] is None for c in r["parts"].values())


@pytest.mark.parametrize("task, shots, says", [("question", ("4",), "no label to bind"),
                                               ("bind", ("0", "4"), "without supports"),
                                               ("bind", ("none",), "without supports")])
def test_bad_requests_say_what_to_give(tiny_run, task, shots, says):
    model, cfg = load_run(tiny_run)
    with pytest.raises(EvalError, match=says):
        repeats.read(model, cfg.data, task, shots, episodes=2)
