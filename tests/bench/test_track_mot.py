"""bench/track_mot.py: the `surveil` settings at a threshold, and ``--set`` on top of them."""

from __future__ import annotations

import pytest

from bench.track_mot import _overrides, surveil_config


def test_the_threshold_sets_high_birth_and_low_scores():
    config = surveil_config(0.5, {})
    assert (config.high_score, config.birth_score, config.low_score) == (0.5, 0.6, 0.1)
    assert surveil_config(0.05, {}).low_score == 0.05


@pytest.mark.parametrize("option", ["birth_score", "high_score", "low_score", "lost_after_s"])
def test_an_option_given_with_set_wins_over_the_derived_one(option):
    config = surveil_config(0.3, _overrides([f"{option}=0.25"]))
    assert getattr(config, option) == 0.25


@pytest.mark.parametrize("pair", ["birth_score", "no_such_option=1", "birth_score=2", "birth_score=x"])
def test_a_bad_set_exits_2_with_a_message(pair, capsys):
    with pytest.raises(SystemExit) as stop:
        _overrides([pair])
    assert stop.value.code == 2 and pair in capsys.readouterr().err
