"""Challenge 25 as a calibrated risk: the distribution head's reader, fusion, the operating point and
calibration (pure functions on synthetic distributions; no model, no ../shared)."""
from __future__ import annotations

import json
import dataclasses
from collections import Counter

import numpy as np
import pytest

from agegate.edge.age_head import AgeHead, fuse, interval, p_under
from agegate.edge.challenge25 import (BLOCKED_RISK, OperatingPoint, choose_max_risk, point_spread, rates,
                                      tradeoff_curve, written_point)
from agegate.edge.decision import Decision, DecisionPolicy, decide
from agegate.edge.errors import ModelError, UsageError
from agegate.edge.metadata import ModelMetadata
from agegate.edge.preprocess import PreprocessSpec

HEAD = AgeHead.distribution()


def gaussian_logits(mu, sigma) -> np.ndarray:
    mu, sigma = np.atleast_1d(mu).astype(float), np.atleast_1d(sigma).astype(float)
    return -0.5 * ((HEAD.ages[None, :] - mu[:, None]) / sigma[:, None]) ** 2


def synthetic(n=4000, noise=5.0, claimed=2.5, seed=0):
    """True ages, and a model whose errors have spread `noise` but which claims `claimed`."""
    rng = np.random.default_rng(seed)
    y = rng.integers(2, 80, n).astype(float)
    mu = y + rng.normal(0, noise, n)
    return y, HEAD.probabilities(gaussian_logits(mu, np.full(n, claimed)))


def test_point_is_the_mean_at_temperature_one_and_probabilities_sum_to_one():
    logits = gaussian_logits([30.0, 61.5], [4.0, 6.0])
    assert HEAD.point(logits) == pytest.approx([30.0, 61.5], abs=0.01)
    hot = dataclasses.replace(HEAD, temperature=2.0)
    assert hot.point(logits) == pytest.approx(HEAD.point(logits))  # the temperature moves the spread only
    assert hot.probabilities(logits).sum(axis=1) == pytest.approx([1, 1])
    assert interval(hot.probabilities(logits), HEAD, 0.8)[1][0] > interval(HEAD.probabilities(logits), HEAD, 0.8)[1][0]


def test_regression_head_reads_a_number_and_has_no_distribution():
    assert AgeHead().point(np.array([[33.3]])) == pytest.approx([33.3])
    with pytest.raises(ModelError):
        AgeHead().probabilities(np.zeros((1, 1)))


def test_p_under_counts_whole_years_below_the_age():
    p = np.zeros((1, HEAD.n_bins))
    p[0, 24], p[0, 25] = 0.3, 0.7
    assert p_under(p, HEAD, 25)[0] == pytest.approx(0.3)


def test_fused_distribution_is_the_weighted_mixture_not_a_product():
    a, b = HEAD.probabilities(gaussian_logits([20.0, 40.0], [3.0, 3.0]))
    f = fuse(np.stack([a, b]), np.array([3.0, 1.0]))
    assert f == pytest.approx(0.75 * a + 0.25 * b)
    same = fuse(np.stack([a] * 10))
    assert same == pytest.approx(a)  # ten identical frames are not ten times the evidence


def test_choose_max_risk_meets_its_target_and_is_the_loosest_that_does():
    y, probs = synthetic()
    risk = p_under(probs, HEAD, 25)
    for target in (0.0, 0.005, 0.01, 0.05):
        t = choose_max_risk(risk, y, target)
        assert rates(risk, y, t)["minors_ok"] <= target
        looser = np.nextafter(np.sort(risk[y < 18])[int(np.floor(target * (y < 18).sum()))], 1.0)
        assert rates(risk, y, float(looser))["minors_ok"] > target  # one step more and it fails
    with pytest.raises(ModelError, match="no minors"):
        choose_max_risk(risk[y >= 18], y[y >= 18], 0.01)


def test_the_points_spread_says_how_far_one_or_two_minors_move_it():
    """The per-buyer point is the second-lowest minor risk of 902 val minor buyers (one may pass): on another draw
    of as many minors it falls where that draw's second-lowest does. A bootstrap gives the range; it holds the point
    chosen on all of them, widens when the lowest risks are few and far apart, is seeded, and, with no adults to
    cost it, still gives the point's range."""
    rng = np.random.default_rng(3)
    ages = np.r_[rng.integers(2, 18, 900), rng.integers(25, 80, 700)].astype(np.float64)
    risk = np.where(ages < 18, rng.beta(8, 1, 1600), rng.beta(1, 4, 1600))
    spread = point_spread(risk, ages, 0.005)
    lo, mid, hi = spread["point"]
    assert lo <= choose_max_risk(risk, ages, 0.005) <= hi and lo <= mid <= hi
    a_lo, _, a_hi = spread["adults_asked"]
    assert a_lo <= rates(risk, ages, choose_max_risk(risk, ages, 0.005))["adults_asked"] <= a_hi
    assert point_spread(risk, ages, 0.005) == spread and point_spread(risk, ages, 0.005, seed=1) != spread
    # two minors far below the rest: whether a draw holds them decides where the point falls
    outliers = risk.copy()
    outliers[:2] = [0.02, 0.05]
    wide = point_spread(outliers, ages, 0.005)["point"]
    assert wide[2] - wide[0] > 5 * (hi - lo)
    assert point_spread(risk[ages < 18], ages[ages < 18], 0.005)["adults_asked"] is None


def test_with_several_draws_a_minor_counts_by_the_share_of_draws_they_pass_in():
    """calibrate --draws: the same buyers replayed three times. 100 minors may let one pass (1 %, the share seen);
    three minors who each pass in one draw of three cost one pass together, where one draw alone would have set
    the point below the first of them. A minor who passes in every draw costs a whole one; the bound counts
    people, not replays; the spread resamples people with all their draws."""
    ages = np.r_[np.full(100, 12.0), np.full(50, 40.0)]
    one = np.r_[np.full(100, 0.9), np.full(50, 0.3)]
    draws = np.stack([one, one, one])
    draws[0, :3] = [0.05, 0.06, 0.07]  # three faces that pass on one unlucky draw each... all in draw 0
    assert choose_max_risk(draws[0], ages, 0.01, confidence=None) == pytest.approx(0.06)  # one draw: A passes
    t = choose_max_risk(draws, ages, 0.01, confidence=None)
    assert t == pytest.approx(0.9) and t < 0.9  # three thirds: all three may pass their one draw
    r = rates(draws, ages, t, upper=False)
    assert r["minors_ok"] == pytest.approx(0.01) and r["n_minors"] == 100 and r["n_adults"] == 50
    always = draws.copy()
    always[:, 0] = 0.05  # the first passes in every draw: a whole minor, so the others may not
    assert choose_max_risk(always, ages, 0.01, confidence=None) == pytest.approx(0.06)
    # the bound: one person's worth of passes among 100 people, not 3 among 300 replays
    assert rates(draws, ages, t)["minors_ok_upper"] == rates(draws[0], ages, 0.055)["minors_ok_upper"]
    assert rates(draws, ages, 0.065)["minors_ok_upper"] == rates(draws[0], ages, 0.055)["minors_ok_upper"]
    assert tradeoff_curve(draws[:1], ages) == tradeoff_curve(draws[0], ages)
    spread = point_spread(draws, ages, 0.01, confidence=None)
    assert spread["point"][0] <= t <= spread["point"][2] and point_spread(draws, ages, 0.01, None) == spread


def test_the_written_point_stays_below_the_minor_it_must_not_pass():
    """The point is written with 6 decimals. Rounded to the nearest, a point just under a minor's risk of 0.07279
    was written as 0.07279 itself, and that minor passes at it (risk <= point): rounded down it stays under."""
    assert written_point(np.nextafter(0.07279, -np.inf)) == 0.072789 and written_point(np.nextafter(0.07, 0)) < 0.07
    assert written_point(0.1234567) == 0.123456 and written_point(1.0) == 1.0 and written_point(0.0) == 0.0
    ages = np.r_[np.full(100, 15.0), np.full(20, 40.0)]
    risk = np.r_[0.05, 0.07279, np.full(98, 0.9), np.full(20, 0.1)]
    t = written_point(choose_max_risk(risk, ages, 0.01, confidence=None))
    assert rates(risk, ages, t, upper=False)["minors_ok"] == 0.01  # the second minor stays asked


def test_tradeoff_curve_is_monotone():
    y, probs = synthetic()
    curve = tradeoff_curve(p_under(probs, HEAD, 25), y)
    minors = [c["minors_ok"] for c in curve]
    adults = [c["adults_asked"] for c in curve]
    assert minors == sorted(minors) and adults == sorted(adults, reverse=True)
    assert minors[0] == 0.0 and adults[-1] == 0.0


def test_the_tradeoff_chart_draws_the_targets_of_the_curves_it_shows():
    """The Challenge-25 chart marked the operating point but not the targets it was chosen for, so a reader could
    not see how near the line the point sits; now a dotted line per target, for the curves drawn only (eval's
    per-image chart gets no per-buyer target)."""
    import matplotlib.pyplot as plt

    from agegate.convert.calibrate import draw_tradeoff

    y, probs = synthetic()
    curve = tradeoff_curve(p_under(probs, HEAD, 25), y)
    op = OperatingPoint(0.2, 0.01, 0.005)

    def targets(fig):
        return {round(line.get_ydata()[0], 6): line.get_label() for line in fig.axes[0].lines
                if line.get_linestyle() == ":"}

    fig = draw_tradeoff(curve, curve, op)
    assert targets(fig) == {1.0: "target per image: at most 1 % of minors ok",
                            0.5: "target per buyer: at most 0.5 % of minors ok"}
    plt.close(fig)
    fig = draw_tradeoff(curve, [], op)
    assert list(targets(fig)) == [1.0]
    plt.close(fig)
    fig = draw_tradeoff(curve, [], None)
    assert targets(fig) == {}
    plt.close(fig)


def test_a_buyer_no_threshold_passes_stays_asked_to_the_end_of_the_curve():
    """Per buyer, an `uncertain` buyer (BLOCKED_RISK) is asked at every operating point: the curve ends
    with the decided minors ok and the blocked adults asked, not at 100 % of minors ok (the spike the
    per-buyer plots drew before)."""
    ages = np.array([10, 12, 15, 30, 40, 50, 60], np.float64)
    risk = np.array([0.9, 0.99, BLOCKED_RISK, 0.1, 0.2, BLOCKED_RISK, 1.0])
    end = tradeoff_curve(risk, ages)[-1]
    assert end["max_risk"] == 1.0
    assert end["minors_ok"] == pytest.approx(2 / 3) and end["adults_asked"] == pytest.approx(1 / 4)
    assert all(c["max_risk"] <= 1.0 for c in tradeoff_curve(risk, ages))
    # too few minors to show a target: the strictest point, never above 1 even when the next minor is blocked
    assert choose_max_risk(risk, ages, 0.7, confidence=None) == 1.0  # 2 of 3 may pass: the third is blocked
    assert choose_max_risk(np.array([0.2, BLOCKED_RISK, 0.5]), np.array([10, 12, 30.0]), 0.5, confidence=None) == 1.0


def test_fitted_temperature_makes_the_80_percent_interval_hold_80_percent():
    from agegate.convert.calibrate import coverage, fit_temperature, with_temperature

    y, probs = synthetic(claimed=2.5)  # overconfident: the 80 % interval holds far less
    assert coverage(y, probs, HEAD) < 0.6
    t = fit_temperature(y, probs, HEAD)
    assert t > 1.5
    assert coverage(y, with_temperature(probs, HEAD, t), HEAD) == pytest.approx(0.8, abs=0.02)
    y2, probs2 = synthetic(claimed=12.0, seed=1)  # underconfident: sharpened
    assert fit_temperature(y2, probs2, HEAD) < 1.0


def _meta(tmp_path):
    from agegate.edge.metadata import write_metadata

    path = tmp_path / "m.tflite"
    path.write_bytes(b"placeholder: calibrate reads and writes only the sidecar")
    write_metadata(path, ModelMetadata("mobilenet_v2", 112, PreprocessSpec(112, normalization="mobilenet", face_crop="box"),
                                       head=HEAD))
    return path


def test_calibrate_writes_temperature_and_operating_point_with_what_it_costs(tmp_path):
    from agegate.convert.calibrate import calibrate
    from agegate.convert.evaluate import Predictions
    from agegate.edge.metadata import read_metadata

    path = _meta(tmp_path)
    y, probs = synthetic()
    preds = Predictions([f"{i}.jpg" for i in range(len(y))], y, probs @ HEAD.ages, probs=probs, head=HEAD)
    result = calibrate(path, preds, None, max_minors_ok_image=0.01, max_minors_ok_buyer=None)
    meta = read_metadata(path)
    assert meta.head.temperature == result.temperature != 1.0
    op = meta.operating_point
    assert op == result.operating_point and op.measured["per_image"]["minors_ok"] <= 0.01
    assert 0 < op.measured["per_image"]["adults_asked"] < 1 and not op.looser_than_default
    assert "P(under 25) >" in op.describe()


def test_calibrate_lists_the_minors_that_set_the_operating_point_for_a_label_check(tmp_path):
    from agegate.convert.calibrate import calibrate
    from agegate.convert.evaluate import Predictions

    path = _meta(tmp_path)
    y, probs = synthetic()
    # one "minor" the model sees as a 40-year-old (a mislabelled adult): the riskless end of the list
    y = y.copy()
    adult = int(np.flatnonzero(y >= 35)[0])
    y[adult] = 10.0
    preds = Predictions([f"{i}.jpg" for i in range(len(y))], y, probs @ HEAD.ages, probs=probs, head=HEAD)
    result = calibrate(path, preds, None, max_minors_ok_image=0.01, max_minors_ok_buyer=None)
    line = result.minors_at_the_line
    max_risk = result.operating_point.max_risk
    assert line[0]["path"] == f"{adult}.jpg" and line[0]["age"] == 10.0 and line[0]["passes"]
    risks = [m["risk"] for m in line]
    assert risks == sorted(risks) and all(m["age"] < 18 for m in line)
    n_pass = int(np.sum(p_under(result_probs(probs, result.temperature), HEAD, 25)[y < 18] <= max_risk))
    assert [m["passes"] for m in line] == [True] * n_pass + [False] * 5  # every minor passed, then 5 above the line
    assert "minors at the line" in result.render() and f"{adult}.jpg" in result.render()
    assert result.to_json()["minors_at_the_line"] == line


def result_probs(probs, temperature):
    from agegate.convert.calibrate import with_temperature

    return with_temperature(probs, HEAD, temperature)


def test_calibration_replays_every_minor_and_a_seeded_sample_of_the_others():
    from agegate.convert.calibrate import calibration_buyers

    ages = np.array([30, 5, 17, 18, 40, 70, 12, 25, 60, 33], float)
    pick = calibration_buyers(ages, 3)
    assert pick == sorted(pick) and {1, 2, 6} <= set(pick) and len(pick) == 3 + 3
    assert all(ages[i] >= 18 for i in set(pick) - {1, 2, 6})
    assert pick == calibration_buyers(ages, 3) != calibration_buyers(ages, 3, seed=1)
    assert calibration_buyers(ages, 0) == [1, 2, 6] and calibration_buyers(ages, 99) == list(range(10))


def test_a_label_found_wrong_is_left_out_of_calibration_and_recorded(tmp_path):
    from agegate.convert.calibrate import calibrate
    from agegate.train.label_errors import match_exclusions, read_label_exclusions
    from agegate.convert.evaluate import Predictions

    y, probs = synthetic()
    y = y.copy()
    adult = int(np.flatnonzero(y >= 35)[0])
    y[adult] = 10.0  # an adult labelled 10: the riskless minor that would take a pass
    preds = Predictions([f"set/images/{i}.jpg" for i in range(len(y))], y, probs @ HEAD.ages, probs=probs, head=HEAD)
    listing = tmp_path / "wrong.txt"
    listing.write_text(f"# checked by a person\n\nimages/{adult}.jpg  an adult, labelled 10\n")
    excluded = read_label_exclusions(listing)
    assert [(e.path, e.reason) for e in excluded] == [(f"images/{adult}.jpg", "an adult, labelled 10")]
    kept = calibrate(_meta(tmp_path), preds, None, max_minors_ok_image=0.01, max_minors_ok_buyer=None)
    left = calibrate(_meta(tmp_path), preds, None, max_minors_ok_image=0.01, max_minors_ok_buyer=None,
                     excluded=excluded)
    assert kept.operating_point.excluded is None
    assert left.operating_point.excluded == [{"path": f"images/{adult}.jpg", "reason": "an adult, labelled 10"}]
    assert left.operating_point.measured["per_image"]["n_minors"] == kept.operating_point.measured["per_image"]["n_minors"] - 1
    assert left.operating_point.max_risk > kept.operating_point.max_risk  # its pass goes to a real minor's risk
    assert "1 image(s) left out as mislabelled" in left.operating_point.describe()
    assert OperatingPoint.from_dict(left.operating_point.to_dict()) == left.operating_point
    with pytest.raises(UsageError, match="names no image"):
        match_exclusions(read_label_exclusions(listing), [("set/images/x.jpg", None)], str(listing))
    listing.write_text("images/3.jpg\n")
    with pytest.raises(UsageError, match=r"wrong.txt:1: give the image's path, then why"):
        read_label_exclusions(listing)


def test_calibrate_chooses_the_per_buyer_point_over_every_draw_of_the_replay(tmp_path):
    from agegate.convert.calibrate import calibrate
    from agegate.convert.evaluate import Predictions

    y, probs = synthetic()
    preds = Predictions([f"{i}.jpg" for i in range(len(y))], y, probs @ HEAD.ages, probs=probs, head=HEAD)
    ages = np.r_[np.full(900, 14.0), np.full(300, 40.0)]
    paths = [f"b{i}.jpg" for i in range(len(ages))]

    def summary(risks):
        return {"buyers": len(ages), "buyer_risks": [[a, r] for a, r in zip(ages, risks)], "buyer_paths": paths,
                "risk_curve": tradeoff_curve(risks, ages)}

    base = np.r_[np.full(900, 0.9), np.full(300, 0.3)]
    first, second = base.copy(), base.copy()
    first[:2], second[2] = [0.05, 0.06], 0.07  # 900 minors let one pass (0.5 %, 90 %): two in draw 1, one in 2
    single = calibrate(_meta(tmp_path), preds, lambda meta: [summary(first)])
    both = calibrate(_meta(tmp_path), preds, lambda meta: [summary(first), summary(second)])
    assert single.operating_point.max_risk < 0.06 <= both.operating_point.max_risk < 0.07  # 2 halves pass
    measured = both.operating_point.measured["per_buyer"]
    assert measured["draws"] == 2 and "draws" not in single.operating_point.measured["per_buyer"]
    assert measured["minors_ok"] == pytest.approx(1 / 900) and "(2 draws)" in both.operating_point.describe()
    line = both.buyers_at_the_line
    assert [(m["path"], m["passed_draws"], m["risks"]) for m in line[:3]] == [
        ("b0.jpg", 1, [0.05, 0.9]), ("b1.jpg", 1, [0.06, 0.9]), ("b2.jpg", 0, [0.9, 0.07])]
    assert "passes 1/2  risk 0.050" in both.render() and len(both.to_json()["more_replays"]) == 1
    with pytest.raises(ModelError, match="different buyers"):
        calibrate(_meta(tmp_path), preds,
                  lambda meta: [summary(first), {**summary(second), "buyer_paths": paths[::-1]}])


def test_a_looser_target_needs_an_explicit_flag_and_is_recorded(tmp_path):
    from agegate.convert.calibrate import calibrate
    from agegate.convert.evaluate import Predictions

    path = _meta(tmp_path)
    y, probs = synthetic()
    preds = Predictions([f"{i}.jpg" for i in range(len(y))], y, y, probs=probs, head=HEAD)
    with pytest.raises(UsageError, match="--allow-looser"):
        calibrate(path, preds, None, max_minors_ok_image=0.05, max_minors_ok_buyer=None)
    r = calibrate(path, preds, None, max_minors_ok_image=0.05, max_minors_ok_buyer=None, allow_looser=True)
    assert r.operating_point.looser_than_default


def test_calibrate_refuses_a_regression_model(tmp_path):
    from agegate.convert.calibrate import calibrate
    from agegate.edge.metadata import write_metadata

    path = tmp_path / "r.tflite"
    path.write_bytes(b"x")
    write_metadata(path, ModelMetadata("mobilenet_v2", 112, PreprocessSpec(112, normalization="mobilenet")))
    with pytest.raises(ModelError, match="--head distribution"):
        calibrate(path, None, None)


def test_decision_by_risk_when_the_model_carries_an_operating_point():
    policy = DecisionPolicy(max_risk=0.2)
    assert decide(40.0, 10, 1.0, policy, Counter(), risk=0.25)[0] is Decision.ID_CHECK  # old-looking, risky
    assert decide(21.0, 10, 1.0, policy, Counter(), risk=0.1)[0] is Decision.OK
    assert decide(21.0, 2, 1.0, policy, Counter(), risk=0.1)[0] is Decision.UNCERTAIN  # thin evidence stays
    assert decide(21.0, 10, 1.0, DecisionPolicy(), Counter(), risk=0.1)[0] is Decision.ID_CHECK  # no point: age


def test_operating_point_round_trips_through_metadata_and_refuses_nonsense():
    op = OperatingPoint(0.31, measured={"per_image": {"minors_ok": 0.004, "adults_asked": 0.12}}, chosen_on="x [val]")
    meta = ModelMetadata("m", 96, PreprocessSpec(96, normalization="mobilenet"), head=HEAD, operating_point=op)
    again = ModelMetadata.from_dict(meta.to_dict())
    assert again.operating_point == op and again.head == HEAD
    with pytest.raises(ModelError):
        OperatingPoint(1.5)


def test_operating_point_holds_with_confidence_not_just_on_the_data_it_was_chosen_on():
    from agegate.edge.challenge25 import allowed_minors, binomial_upper

    y, probs = synthetic(n=6000)
    risk = p_under(probs, HEAD, 25)
    n = int((y < 18).sum())
    t = choose_max_risk(risk, y, 0.01)  # default: 90 % confidence
    k = int(np.sum(risk[y < 18] <= t))
    assert binomial_upper(k, n) <= 0.01 < binomial_upper(k + 1, n)
    assert k < np.floor(0.01 * n)  # stricter than the share seen
    assert choose_max_risk(risk, y, 0.01, confidence=None) >= t
    assert binomial_upper(0, 122) == pytest.approx(0.0187, abs=1e-4)  # Clopper-Pearson, 90 % one-sided
    assert allowed_minors(122, 0.005) is None  # 122 minors cannot show 0.5 %: none may pass
    few = y < 18
    idx = np.concatenate([np.flatnonzero(few)[:100], np.flatnonzero(~few)])
    t_few = choose_max_risk(risk[idx], y[idx], 0.005)
    assert rates(risk[idx], y[idx], t_few)["minors_ok"] == 0.0


def test_qa_gate_fails_only_when_the_qa_data_show_the_target_missed():
    from agegate.convert.evaluate import Predictions
    from agegate.convert.qa import operating_point_gates

    def preds(minors_ok: int, n_minors: int = 500):
        y = np.array([10.0] * n_minors + [40.0] * 500)
        risk = np.array([0.1] * minors_ok + [0.9] * (n_minors - minors_ok) + [0.01] * 500)
        probs = np.zeros((len(y), HEAD.n_bins))
        probs[:, 10], probs[:, 40] = risk, 1 - risk  # P(under 25) = risk
        return Predictions([str(i) for i in range(len(y))], y, y, probs=probs, head=HEAD,
                           operating_point=OperatingPoint(0.5))

    assert [g.passed for g in operating_point_gates(preds(5))] == [True]  # 1.0 %: at the target
    assert [g.passed for g in operating_point_gates(preds(6))] == [True]  # 1.2 %: no evidence of a miss
    gate = operating_point_gates(preds(20))[0]  # 4 %: the data show a miss
    assert not gate.passed and gate.value == 0.04 and "20 of 500" in gate.detail
    assert operating_point_gates(dataclasses.replace(preds(5), operating_point=None)) == []
    # A point written with calibrate --allow-unshown (too few minors to show its target) does not pass QA.
    unshown = OperatingPoint(0.5, measured={"per_image": {"n_minors": 6, "target_shown": False}}, chosen_on="utk [val]")
    gates = operating_point_gates(dataclasses.replace(preds(0), operating_point=unshown))
    assert [(g.name, g.passed) for g in gates] == [("operating_point_shown[per image]", False), ("operating_point", True)]
    assert "chosen on 6 minor(s) (utk [val])" in gates[0].detail


def test_qa_gates_the_per_buyer_target_on_a_replay_and_notes_it_unchecked_without_one():
    from agegate.convert.evaluate import Predictions
    from agegate.convert.qa import Gates, buyer_gate, compare

    op = OperatingPoint(0.5, target_minors_ok_buyer=0.005)
    # 400 minor buyers and 300 adults; `passed` minors with a risk under the point, one minor blocked (uncertain)
    def replayed(passed: int) -> dict:
        risks = [[12.0, 0.1]] * passed + [[12.0, 0.9]] * (399 - passed) + [[12.0, BLOCKED_RISK]] + [[40.0, 0.2]] * 300
        return {"buyer_risks": risks, "buyer_paths": ["p"] * 700, "risk_curve": [{"threshold": 0.5}], "buyers": 700}

    assert buyer_gate(op, [replayed(1)]).passed  # 0.25 %: under the target
    assert buyer_gate(op, [replayed(4)]).passed  # 1.0 %: its lower bound (0.41 %) is no evidence of a miss
    miss = buyer_gate(op, [replayed(12)])  # 3 %: the replay shows the target missed
    assert not miss.passed and miss.value == 0.03 and "12 of 400" in miss.detail and "per buyer" in miss.name
    assert buyer_gate(dataclasses.replace(op, target_minors_ok_buyer=None), [replayed(12)]) is None
    assert buyer_gate(op, [{"buyers": 3}]) is None  # nobody decided with a risk
    # Over draws (qa --draws) a minor passing in one draw of two counts half: 8 such minors are 4 people, and
    # only whole people are evidence of a miss (4 of 400: no evidence, as above), where the same 8 passing in
    # every draw are 8 people and a miss.
    half = buyer_gate(op, [replayed(8), replayed(0)])
    assert half.passed and half.value == 0.01 and "4 of 400 over 2 draws" in half.detail
    assert not buyer_gate(op, [replayed(8), replayed(8)]).passed
    assert "4.50 of 400" in buyer_gate(op, [replayed(9), replayed(0)]).detail

    y = np.array([12.0, 40.0])
    probs = np.zeros((2, HEAD.n_bins)); probs[0, 30] = probs[1, 40] = 1.0
    qp = Predictions(["a", "b"], y, probs @ HEAD.ages, probs=probs, head=HEAD, operating_point=op)
    rep = compare(qp, qp, Gates(), "f", "q", replays=[replayed(12)])
    assert not {g.name: g for g in rep.gates}["operating_point[per buyer]"].passed and not rep.passed
    per_buyer = rep.challenge25["per_buyer"]
    assert per_buyer["curve"] == [{"threshold": 0.5}] and "buyer_risks" not in per_buyer and per_buyer["buyers"] == 700
    assert per_buyer["draws"] == 1
    assert len(rep.challenge25["per_image"]["curve"]) == 101
    alone = compare(qp, qp, Gates(), "f", "q")
    assert "operating_point[per buyer]" not in {g.name for g in alone.gates}
    assert any("per-buyer target" in n and "--buyers N" in n for n in alone.notes)


def test_qa_compares_the_decisions_the_box_makes_for_a_calibrated_model():
    from agegate.convert.evaluate import Predictions
    from agegate.convert.qa import Gates, compare

    y = np.array([10.0, 20.0, 30.0, 40.0])
    # float and int8 agree on P(under 25) decisions at 0.5, but their means straddle 25 for one image
    pf = np.zeros((4, HEAD.n_bins)); pq = np.zeros((4, HEAD.n_bins))
    for i, (rf, rq) in enumerate(((0.9, 0.9), (0.8, 0.7), (0.3, 0.2), (0.1, 0.1))):
        pf[i, 24], pf[i, 26] = rf, 1 - rf
        pq[i, 24], pq[i, 26] = rq, 1 - rq
    op = OperatingPoint(0.5)
    paths = [str(i) for i in range(4)]
    fp = Predictions(paths, y, pf @ HEAD.ages, probs=pf, head=HEAD, operating_point=op)
    qp = Predictions(paths, y, pq @ HEAD.ages, probs=pq, head=HEAD, operating_point=op)
    gate = {g.name: g for g in compare(fp, qp, Gates(), "f", "q").gates}["decision_flips"]
    assert gate.value == 0.0 and "P(under 25) > 0.500" in gate.detail
    plain = compare(dataclasses.replace(fp, probs=None), dataclasses.replace(qp, probs=None), Gates(), "f", "q")
    assert {g.name: g for g in plain.gates}["decision_flips"].detail.endswith("(age < 25) differs between the models")


def test_one_face_of_a_group_photo_is_left_out_by_its_label_line(tmp_path):
    """A group photo has a row per face: PATH:LINE leaves out that face's row only; the bare path, which
    would leave out every face, is refused with the lines to choose from."""
    from agegate.convert.calibrate import calibrate
    from agegate.train.label_errors import match_exclusions, read_label_exclusions
    from agegate.convert.evaluate import Predictions

    y, probs = synthetic()
    n = len(y)
    paths = [f"set/images/{i}.jpg" for i in range(n)]
    paths[1] = paths[0] = "set/images/group.jpg"  # two faces of one photo, lines 2 and 3 of the CSV
    lines = list(range(2, n + 2))
    preds = Predictions(paths, y, probs @ HEAD.ages, probs=probs, head=HEAD, lines=lines)
    listing = tmp_path / "wrong.txt"
    listing.write_text("images/group.jpg:3  the child at the left is labelled 40\nc:/x.jpg  a colon, no line\n")
    excluded = read_label_exclusions(listing)
    assert [(e.path, e.line) for e in excluded] == [("images/group.jpg", 3), ("c:/x.jpg", None)]
    assert match_exclusions(excluded[:1], preds.keys, str(listing)) == {("set/images/group.jpg", 3)}
    left = calibrate(_meta(tmp_path), preds, None, max_minors_ok_image=0.01, max_minors_ok_buyer=None,
                     excluded=excluded[:1])
    m = left.operating_point.measured["per_image"]
    assert m["n_minors"] + m["n_adults"] == int(np.sum(y < 18)) + int(np.sum(y >= 25)) - (y[1] < 18 or y[1] >= 25)
    assert left.operating_point.excluded == [{"path": "images/group.jpg", "reason": "the child at the left is "
                                              "labelled 40", "line": 3}]
    assert OperatingPoint.from_dict(left.operating_point.to_dict()) == left.operating_point
    listing.write_text("images/group.jpg  wrong\n")
    with pytest.raises(UsageError, match=r"2 rows of one group photo \(lines 2, 3\); write PATH:LINE"):
        match_exclusions(read_label_exclusions(listing), preds.keys, str(listing))
    kept = preds.without({("set/images/group.jpg", 2)})
    assert kept.keys[0] == ("set/images/group.jpg", 3) and len(kept.paths) == n - 1


def _release_with_box_rules(tmp_path, shipped_model, rules):
    """A release folder holding the shipped model whose operating point records `rules` as its box settings:
    (release, model path, metadata as written)."""
    from .conftest import copy_model

    release = tmp_path / "release"
    release.mkdir()
    model = copy_model(shipped_model, release / "model.tflite")
    meta = json.loads(model.with_suffix(".json").read_text())
    meta["operating_point"]["box_rules"] = rules
    model.with_suffix(".json").write_text(json.dumps(meta))
    return release, model, meta


def test_a_point_remembers_the_box_settings_it_was_chosen_with(tmp_path, shipped_model, caplog):
    """Calibrate records the box's decision settings with a per-buyer point; a box that decides otherwise
    (another blur limit, fewer frames) warns when it starts and `device doctor` flags it, with the fix."""
    import logging

    from agegate.edge.challenge25 import rules_differ
    from agegate.edge.config import load_config
    from agegate.edge.detect import DetectorOptions
    from agegate.edge.doctor import _decision_rule
    from agegate.edge.pipeline import BoxOptions, BoxPipeline
    from agegate.edge.runtime import AgeModel


    box = BoxOptions().decision_rules()
    assert rules_differ(box, box) == [] and rules_differ(None, box) == []
    assert rules_differ({**box, "min_sharpness": 20.0}, box) == ["min_sharpness: chosen with 20, this box 10"]
    # a point recorded before the camera refine existed was chosen without it
    before_refine = {k: v for k, v in box.items() if k != "refine_below"}
    assert rules_differ(before_refine, box) == ["refine_below: chosen with 0, this box 0.2"]
    assert rules_differ(before_refine, {**box, "refine_below": 0.0}) == []
    # ... and one recorded before the second look's margin was chosen at 1 (the line alone): a box run wider warns
    before_margin = {k: v for k, v in box.items() if k != "refine_margin"}
    assert rules_differ(before_margin, box) == []
    wider = BoxOptions(detector=DetectorOptions(refine_margin=1.25)).decision_rules()
    assert rules_differ(before_margin, wider) == ["refine_margin: chosen with 1, this box 1.25"]
    op = OperatingPoint(0.2, box_rules={**box, "min_sharpness": 20.0})
    assert OperatingPoint.from_dict(op.to_dict()) == op and "per buyer with blur limit 20" in op.describe()

    release, model, _ = _release_with_box_rules(tmp_path, shipped_model, box)
    with caplog.at_level(logging.WARNING, logger="agegate.edge"):
        BoxPipeline(AgeModel(model), BoxOptions())
        assert not caplog.records
        BoxPipeline(AgeModel(model), BoxOptions(min_sharpness=30.0))
        assert "min_sharpness: chosen with 10, this box 30" in caplog.text and "agegate calibrate" in caplog.text
        caplog.clear()
        BoxPipeline(AgeModel(model), BoxOptions(min_sharpness=0.0), diagnostic=True)  # a probe's recording box
        assert not caplog.records
        BoxPipeline(AgeModel(model), BoxOptions(detector=DetectorOptions.for_photos()))  # `edge run --source DIR`
        assert "photo detector profile" in caplog.text and "use the settings it was chosen with" not in caplog.text
        caplog.clear()

    cfg = tmp_path / "box.toml"
    cfg.write_text(f'[source]\nuri = "0"\n[model]\npath = "{model}"\n[events]\npath = "{tmp_path}/ev.sqlite"\n')
    assert _decision_rule(release, load_config(cfg)).ok
    cfg.write_text(cfg.read_text() + "[decision]\nmin_frames = 3\n")
    check = _decision_rule(release, load_config(cfg))
    assert not check.ok and "min_frames: chosen with 5, this box 3" in check.detail and "recalibrate" in check.fix
    # the quality rules are box.toml keys too (a store lit from above may need a lower eye line): flagged alike
    cfg.write_text(cfg.read_text().replace("[decision]\nmin_frames = 3\n", "[quality]\nmin_eye_light = 0.2\n"))
    check = _decision_rule(release, load_config(cfg))
    assert not check.ok and check.detail.endswith("(min_eye_light: chosen with 0.3, this box 0.2)")


def test_the_shipped_point_was_chosen_with_the_box_defaults(shipped_model):
    """A box with default settings must not warn that the shipped model's operating point may not hold: every
    decision setting (a new quality check too) is recalibrated into the shipped sidecar when it changes."""
    from agegate.edge.challenge25 import settings_mismatch
    from agegate.edge.metadata import read_metadata
    from agegate.edge.pipeline import BoxOptions

    op = read_metadata(shipped_model).operating_point
    assert op is not None and settings_mismatch(op, BoxOptions().decision_rules()) == ""


def test_a_threshold_a_calibrated_model_does_not_use_is_said_to_be_unused(tmp_path, shipped_model, caplog):
    """A calibrated model asks for ID by its risk at its operating point: an id_threshold raised to 30 to be
    stricter changed nothing and said nothing. The box now warns when it starts, and `device doctor` flags it
    with the fix; the decision rule itself is unchanged (the same point decides)."""
    import logging

    from agegate.edge.config import load_config
    from agegate.edge.decision import DecisionPolicy
    from agegate.edge.doctor import _decision_rule
    from agegate.edge.pipeline import BoxOptions, BoxPipeline
    from agegate.edge.runtime import AgeModel

    release, model, meta = _release_with_box_rules(tmp_path, shipped_model, BoxOptions().decision_rules())
    with caplog.at_level(logging.WARNING, logger="agegate.edge"):
        BoxPipeline(AgeModel(model), BoxOptions())
        assert not caplog.records
        pipeline = BoxPipeline(AgeModel(model), BoxOptions(policy=DecisionPolicy(id_threshold=30)))
    assert "decision.id_threshold = 30 is not used" in caplog.text and "agegate calibrate" in caplog.text
    assert pipeline.policy.max_risk == meta["operating_point"]["max_risk"]
    cfg = tmp_path / "box.toml"
    cfg.write_text(f'[source]\nuri = "0"\n[model]\npath = "{model}"\n[decision]\nid_threshold = 30\n')
    check = _decision_rule(release, load_config(cfg))
    assert not check.ok and "id_threshold = 30 is not used" in check.detail


def test_a_point_calibrated_before_the_box_settings_were_recorded_is_flagged(tmp_path, shipped_model, caplog):
    """A bundle calibrated per buyer before agegate recorded the box's settings (its blur limit may be 20 or
    10) cannot show its per-buyer rates hold here: the box warns and doctor flags it. A point that measured
    no buyers has no per-buyer rates to lose, so nothing is said."""
    import logging

    from agegate.edge.challenge25 import settings_mismatch
    from agegate.edge.doctor import _decision_rule
    from agegate.edge.pipeline import BoxOptions, BoxPipeline, box_policy
    from agegate.edge.runtime import AgeModel


    release, model, meta = _release_with_box_rules(tmp_path, shipped_model, None)
    box = BoxOptions().decision_rules()
    with caplog.at_level(logging.WARNING, logger="agegate.edge"):
        pipeline = BoxPipeline(AgeModel(model), BoxOptions())
    assert "not recorded" in caplog.text and "agegate calibrate" in caplog.text
    assert pipeline.policy.max_risk == meta["operating_point"]["max_risk"]  # it still decides at its point
    check = _decision_rule(release, None)
    assert not check.ok and not check.critical and "not recorded" in check.detail

    op = OperatingPoint.from_dict({**meta["operating_point"], "measured": {"per_image": meta["operating_point"]
                                                                           ["measured"]["per_image"]}})
    assert settings_mismatch(op, box) == "" and settings_mismatch(None, box) == ""
    own = BoxOptions(policy=DecisionPolicy(max_risk=0.3))  # a box that fixes its own point keeps it
    assert box_policy(AgeModel(model).meta, own).max_risk == 0.3


def test_qa_reads_a_parent_with_its_childs_head_and_refuses_a_parent_with_another_kind_of_head():
    from agegate.convert.qa import parent_head

    base = ModelMetadata("tiny", 32, PreprocessSpec(32))
    parent = dataclasses.replace(base, head=AgeHead.distribution(temperature=0.9049))
    child = dataclasses.replace(base, head=AgeHead.distribution(temperature=0.9808), quantization="int8")
    assert parent_head(parent, child).temperature == 0.9808
    assert parent_head(base, dataclasses.replace(base, quantization="int8")) is None  # regression: its own
    with pytest.raises(UsageError, match="not parent and child"):
        parent_head(base, child)
