"""F1 distribution rules: legs sum exactly to the payment, none negative, the target rule never overshoots."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.families.groups import SplitError, split_equal, split_fixed, split_to_target
from app.money import minor_units

CURRENCIES = ("ZAR", "LSL", "XOF")


def amounts(currency: str, low: int = 1, high: int = 5_000_000):
    places = minor_units(currency)
    return st.integers(low, high).map(lambda n: Decimal(n).scaleb(-places))


@st.composite
def equal_case(draw):
    currency = draw(st.sampled_from(CURRENCIES))
    members = draw(st.integers(1, 12))
    return currency, draw(amounts(currency)), members, draw(st.integers(0, members - 1))


@settings(max_examples=30, deadline=None)
@given(equal_case())
def test_equal_split_adds_up_and_the_remainder_goes_to_the_stated_member(case):
    currency, amount, members, remainder_to = case
    legs = split_equal(amount, members, currency, remainder_to=remainder_to)
    assert sum(legs) == amount and len(legs) == members
    assert all(leg >= 0 for leg in legs)
    others = [leg for i, leg in enumerate(legs) if i != remainder_to]
    assert len(set(others)) <= 1 and all(legs[remainder_to] >= leg for leg in others)
    assert all(leg == leg.quantize(Decimal(1).scaleb(-minor_units(currency))) for leg in legs)


@st.composite
def target_case(draw):
    currency = draw(st.sampled_from(CURRENCIES))
    n = draw(st.integers(1, 8))
    balances = draw(st.lists(amounts(currency, -100_000, 200_000), min_size=n, max_size=n))
    targets = draw(st.lists(amounts(currency, 0, 300_000), min_size=n, max_size=n))
    return currency, balances, targets, draw(st.integers(1, 10_000_000))


@settings(max_examples=30, deadline=None)
@given(target_case())
def test_the_target_rule_never_overshoots_and_adds_up(case):
    currency, balances, targets, pick = case
    missing = sum(max(t - b, Decimal(0)) for b, t in zip(balances, targets))
    if missing <= 0:
        with pytest.raises(SplitError):
            split_to_target(balances, targets, currency)
        return
    full = split_to_target(balances, targets, currency)
    assert sum(full) == missing
    step = Decimal(1).scaleb(-minor_units(currency))
    amount = min(Decimal(pick) * step, missing)
    legs = split_to_target(balances, targets, currency, amount)
    assert sum(legs) == amount
    for leg, balance, target in zip(legs, balances, targets):
        assert leg >= 0
        assert leg == 0 or balance + leg <= target
    with pytest.raises(SplitError):
        split_to_target(balances, targets, currency, missing + step)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(CURRENCIES).flatmap(
    lambda c: st.tuples(st.just(c), st.lists(amounts(c, 0, 100_000), min_size=1, max_size=8))))
def test_fixed_amounts_are_taken_as_given(case):
    currency, given_amounts = case
    if sum(given_amounts) == 0:
        with pytest.raises(SplitError):
            split_fixed(given_amounts, currency)
        return
    assert split_fixed(given_amounts, currency) == given_amounts


def test_splits_refuse_what_cannot_be_paid():
    with pytest.raises(SplitError):
        split_equal(Decimal("10.001"), 2, "ZAR")
    with pytest.raises(SplitError):
        split_equal(Decimal("5"), 2, "XOF", remainder_to=2)
    with pytest.raises(SplitError):
        split_fixed([Decimal("-1"), Decimal("5")], "LSL")
    assert split_equal(Decimal("100"), 3, "XOF", remainder_to=1) == [Decimal(33), Decimal(34), Decimal(33)]
