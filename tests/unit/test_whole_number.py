"""`app.routing.whole_number`: the one parser of ids and counts typed into forms and query strings."""
from hypothesis import given, settings
from hypothesis import strategies as st

from app.routing import INTEGER_MAX, whole_number


def test_digits_other_than_ascii_are_not_numbers():
    for text in ("²", "٣", "１２", "1²", "⁹"):
        assert text.isdigit() or not text.isascii()
        assert whole_number(text) is None, text


def test_bounds_blanks_and_spaces():
    assert whole_number(" 42 ") == 42
    assert whole_number("0") == 0 and whole_number("0", 1) is None
    assert whole_number(str(INTEGER_MAX)) == INTEGER_MAX and whole_number(str(INTEGER_MAX + 1)) is None
    assert whole_number("9" * 400) is None
    for text in (None, "", "  ", "-1", "+1", "1.0", "1e3", "0x10"):
        assert whole_number(text) is None, text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=14))
def test_any_text_is_a_number_in_bounds_or_none(text):
    value = whole_number(text, 1, 10**6)
    assert value is None or (1 <= value <= 10**6 and str(value) == text.strip().lstrip("0"))
