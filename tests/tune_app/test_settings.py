"""Reading user files and --set values."""

from __future__ import annotations

import pytest

from tune_app.settings import UserInputError, load_yaml, parse_set


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e-3", 0.001),
        ("1.5e-4", 1.5e-4),
        ("-2E+2", -200.0),
        (".5", 0.5),
        ("3", 3),
        ("1.0", 1.0),
        ("v1e3", "v1e3"),
        ("null", None),
        ("[0.9, 0.99]", [0.9, 0.99]),
    ],
)
def test_yaml_reads_exponent_floats_as_numbers(text: str, value: object) -> None:
    got = load_yaml(f"k: {text}")["k"]
    assert got == value and type(got) is type(value)


def test_parse_set_types_values_and_rejects_malformed() -> None:
    assert parse_set(["rho=0.5", "anneal=cosine", "data_dir="]) == {
        "rho": 0.5,
        "anneal": "cosine",
        "data_dir": None,
    }
    for bad in ["rho", "=1", "x=[1,"]:
        with pytest.raises(UserInputError, match="--set"):
            parse_set([bad])
