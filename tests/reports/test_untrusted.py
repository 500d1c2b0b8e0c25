"""Whatever a host says, the HTML cell and the CSV cell built from it stay inert and bounded."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from reports.html import CLIP, environment
from scanner.core.output import CSV_CELL_MAX, csv_cell

CELL = environment().from_string('<td>{% set u = v | untrusted %}{{ u.text }}</td>')
BAD = re.compile("[<>\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet="<>&\"'=+-@\t\r\n\u202e\u2066 abcscript/", max_size=600),
                 st.dictionaries(st.text(max_size=5), st.text(max_size=50), max_size=3)))
def test_untrusted_text_is_inert_in_html_and_csv(value):
    html = CELL.render(v=value)
    inner = html[len("<td>"):-len("</td>")]
    assert not BAD.search(inner)
    assert len(inner) <= CLIP * 6 + 1        # every char escapes to at most 6 (\uXXXX, &#34;)
    cell = csv_cell(value)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert len(cell) <= CSV_CELL_MAX + 80
