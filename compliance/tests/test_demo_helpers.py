"""The crawl's leak finder (``Needles``, prepared once for many pages) finds exactly what the plain regex way finds."""

from __future__ import annotations

import html
import random

from .demo import Needles, leaks, leaks_by_regex

CLEAR = {
    "email": {"anna.schmidt@example.com", "o'brien@example.org", "a&b@example.net"},
    "phone": {"+49 30 1234567", "+1 202 555 0143"},
    "birth_date": {"1987-03-04", "04/03/1987"},
    "name": {"Anna", "O'Brien", "Ann", "Marie-Claire", "Zoë", "Tom & Jerry", "a<b", "Li"},
}

FRAGMENTS = [
    "<td>", "</td>", "<td class=\"x\">", "<code>", "</code>", ">", "<", " ", "\n", "\t", "\u00a0", "\u2003",
    "Anna", "Anna ", " Anna", "Annabel", "Ann", "O'Brien", "O&#x27;Brien", "Zoë", "Tom & Jerry", "Tom &amp; Jerry",
    "a<b", "a&lt;b", "Li", "Lisa", "Marie-Claire", "anna.schmidt@example.com", "o&#x27;brien@example.org",
    "a&amp;b@example.net", "a&b@example.net", "+49 30 1234567", "1987-03-04", "04/03/1987", "x", "-", "&",
]


def test_needles_find_what_the_regexes_find_on_random_pages():
    needles = Needles(CLEAR)
    rng = random.Random(21)
    hits = 0
    for _ in range(5000):
        text = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 14)))
        expected = leaks_by_regex(text, CLEAR)
        assert needles.found(text) == expected, repr(text)
        assert leaks(text, CLEAR) == expected
        hits += bool(expected)
    assert hits > 1000  # the pages do hold values, not only misses


def test_needles_on_the_cases_that_matter():
    needles = Needles(CLEAR)
    cases = {
        "<td>Anna</td>": ["Anna"],
        "<td> \n Anna\t</td>": ["Anna"],
        "<td>\u00a0Anna\u2003</td>": ["Anna"],  # Unicode spaces, as \s matches them
        "<td>Annabel</td><td>Anna Maria</td>": [],  # not the whole cell
        f"<td>{html.escape(chr(39).join(['O', 'Brien']))}</td>": ["O'Brien"],
        "<td>Tom &amp; Jerry</td>": ["Tom & Jerry"],
        "<p>x > Li<br>": ["Li"],  # from the last > before the name
        "<td>a<b</td>": ["a<b"],  # a name with a bracket keeps its regex
        "<td>a&lt;b</td>": ["a<b"],
        "mail a&amp;b@example.net here": ["a&b@example.net"],
        "born 04/03/1987.": ["04/03/1987"],
    }
    for text, expected in cases.items():
        assert leaks_by_regex(text, CLEAR) == expected, text
        assert needles.found(text) == expected, text
