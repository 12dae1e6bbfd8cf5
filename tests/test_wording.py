"""builder.wording: counts agree in number."""

from builder.wording import count


def test_counts_agree_in_number():
    assert count(1, "column") == "1 column"
    assert count(0, "column") == "0 columns"
    assert count(1200, "row") == "1,200 rows"
    assert count(2, "entry", "entries") == "2 entries"
