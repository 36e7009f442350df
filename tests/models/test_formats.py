"""Strict-JSON values and numbers as text."""

import json
import math

import numpy as np

from fraudstream.models.formats import fmt_interval, fmt_mean_std, fmt_number, jsonable


def test_jsonable_is_strict_json_of_plain_values():
    value = {1: np.array([1.5, np.nan]), "t": (np.int32(2), np.bool_(False)),
             "inf": -math.inf, "s": "x", "none": None}
    out = jsonable(value)
    assert out == {"1": [1.5, None], "t": [2, False], "inf": None, "s": "x", "none": None}
    assert type(out["t"][0]) is int and type(out["t"][1]) is bool
    json.dumps(out, allow_nan=False)


def test_numbers_print_na_for_what_is_missing():
    assert fmt_number(0.12345) == "0.123" and fmt_number(0.12345, 4) == "0.1235"
    assert fmt_number(0.1, 2, signed=True) == "+0.10"
    assert fmt_number(-0.1, 2, signed=True) == "-0.10"
    assert fmt_number(None) == fmt_number(math.nan) == fmt_number(np.float64("nan")) == "n/a"
    assert fmt_mean_std({"mean": 0.5, "std": 0.25}, 2) == "0.50 ± 0.25"
    assert fmt_mean_std({"mean": 0.05, "std": 0.1}, signed=True) == "+0.050 ± 0.100"
    assert fmt_mean_std({"mean": None, "std": None}) == "n/a"
    assert fmt_interval({"mean": 0.5, "low": 0.4, "high": 0.6}) == "0.500 [0.400, 0.600]"
    assert fmt_interval({"mean": 0.5, "low": None, "high": None}) == "0.500"
    assert fmt_interval({"mean": None, "low": None, "high": None}) == "n/a"
