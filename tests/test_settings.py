"""Option sets (``lrcodec.settings``): what a refinement refuses, the effort presets, and how
an encode's effort, lambda and time limit combine into the refinement it runs. (The CLI's
own refusals are in tests/app/test_cli.py; the presets' growth in tests/learn/test_refine.py.)"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from lrcodec.errors import LrcodecError
from lrcodec.settings import (DEFAULT_EFFORT, EFFORTS, METHODS, THREE_CLASS, EncodeSettings, RefineSettings,
                              effort_settings)


def test_the_defaults_are_valid():
    RefineSettings().check()
    for method in METHODS:
        RefineSettings(method=method).check()
    for method in THREE_CLASS:
        RefineSettings(method=method, three_class=True).check()


@pytest.mark.parametrize("changes, message", [
    (dict(method="SSL"), r"unknown method 'SSL' \(choose from ssl, linear, cosine, atanh, ste, noise\)"),
    (dict(method="ste", three_class=True), "--three-class is available for ssl, linear, cosine, not ste"),
    (dict(iterations=-1), "iterations must be >= 0"),
    (dict(eval_every=0), "eval_every must be >= 1"),
    (dict(patience=-1), "patience >= 0"),
    (dict(lr_drop=1.5), r"lr_drop in \(0, 1\]"),
    (dict(lr_drop=-0.2), r"lr_drop in \(0, 1\]"),
    (dict(time_limit=-1.0), r"time_limit must be >= 0 seconds \(0: none\)"),
    (dict(precision="float16"), r"unknown precision 'float16' \(choose from auto, float32, bfloat16\)"),
])
def test_bad_refinements_are_refused_in_one_line(changes, message):
    with pytest.raises(LrcodecError, match=message):
        RefineSettings(**changes).check()


@pytest.mark.parametrize("changes", [dict(iterations=0), dict(lr_drop=1.0), dict(time_limit=0.0), dict(patience=0),
                                     dict(eval_every=1), dict(precision="bfloat16")])
def test_the_edges_of_the_ranges_are_accepted(changes):
    RefineSettings(**changes).check()


def test_label_names_the_method_and_its_classes():
    assert RefineSettings().label == "ssl"
    assert RefineSettings(method="linear", three_class=True).label == "linear-3c"
    assert RefineSettings(method="noise").label == "noise"


@pytest.mark.parametrize("effort", sorted(EFFORTS))
def test_each_effort_is_its_preset(effort):
    """0 is the plain encode; the others anneal SSL's temperature to e^-1 over their whole
    budget and cut the lr for the last fifth, within a time limit."""
    settings = effort_settings(effort)
    assert settings is EFFORTS[effort]
    if effort == 0:
        assert settings is None and effort_settings(0, iterations=3) is None
        return
    assert settings.method == "ssl" and not settings.three_class and settings.lmbda is None
    assert math.isclose(settings.decay * settings.iterations, 1.0)
    assert settings.lr_drop == 0.8 and settings.time_limit > 0
    changed = effort_settings(effort, iterations=7, lmbda=0.02)
    assert (changed.iterations, changed.lmbda, changed.lr) == (7, 0.02, settings.lr)
    assert EFFORTS[effort] == settings and settings.iterations != 7  # the preset itself is left alone


def test_the_default_effort_refines():
    assert DEFAULT_EFFORT != 0 and effort_settings(DEFAULT_EFFORT) is not None


@pytest.mark.parametrize("effort", [-1, 6, 2.5])
def test_an_unknown_effort_is_refused(effort):
    with pytest.raises(LrcodecError, match=f"effort must be one of 0, 1, 2, 3, 4, 5, got {effort}"):
        effort_settings(effort)
    with pytest.raises(LrcodecError, match="effort must be one of"):
        EncodeSettings(effort=effort).refine_settings()


def test_effort_zero_is_a_plain_encode():
    assert EncodeSettings().refine_settings() is None
    assert EncodeSettings(effort=0, time_limit=30).refine_settings() is None


def test_a_lambda_without_refinement_is_refused():
    with pytest.raises(LrcodecError, match="^--lmbda steers refinement: it needs an effort above 0$"):
        EncodeSettings(effort=0, lmbda=0.01).refine_settings()


def test_lambda_and_time_limit_override_the_preset():
    preset = EFFORTS[3]
    assert EncodeSettings(effort=3).refine_settings() == preset
    assert EncodeSettings(effort=3, lmbda=0.05).refine_settings() == replace(preset, lmbda=0.05)
    assert EncodeSettings(effort=3, time_limit=12.5).refine_settings() == replace(preset, time_limit=12.5)
    unlimited = EncodeSettings(effort=3, time_limit=0).refine_settings()
    assert unlimited.time_limit == 0 and replace(unlimited, time_limit=preset.time_limit) == preset  # 0: none, in both
    assert EFFORTS[3] is preset and preset.lmbda is None and preset.time_limit == 90


def test_an_explicit_refinement_replaces_the_effort():
    """``refine`` is run instead of the effort's preset (even at effort 0), with the encode's
    lambda and time limit on top."""
    own = RefineSettings(method="linear", iterations=40, time_limit=5.0)
    assert EncodeSettings(effort=0, refine=own).refine_settings() == own
    assert EncodeSettings(effort=4, refine=own).refine_settings() == own
    combined = EncodeSettings(effort=0, refine=own, lmbda=0.2, time_limit=0).refine_settings()
    assert combined == replace(own, lmbda=0.2, time_limit=0)


def test_tune_reaches_the_refinement_and_needs_one():
    assert EncodeSettings(effort=2, tune="ms-ssim").refine_settings() == replace(EFFORTS[2], tune="ms-ssim")
    with pytest.raises(LrcodecError, match="^--tune steers refinement: it needs an effort above 0$"):
        EncodeSettings(effort=0, tune="ms-ssim").refine_settings()
    with pytest.raises(LrcodecError, match="^--roi steers refinement: it needs an effort above 0$"):
        EncodeSettings(effort=0, roi="mask.png").refine_settings()


def test_the_ssl_sharpness_defaults_by_the_number_of_classes():
    from lrcodec.settings import SSL_SHARPNESS, SSL_SHARPNESS_THREE_CLASS

    assert RefineSettings().sharpness == SSL_SHARPNESS == 2.3
    assert RefineSettings(three_class=True).sharpness == SSL_SHARPNESS_THREE_CLASS == 1.4
    assert RefineSettings(a=3.0, three_class=True).sharpness == 3.0
