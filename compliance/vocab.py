"""Word lists shared by the recognizers and the column decision (plain data, no Presidio import)."""

from __future__ import annotations

import re

# Legal forms: a value carrying one names a company, not a person.
ORG_WORDS = re.compile(
    r"(?i)(?:^|[\s,(&])(gmbh|ag|kg|kgaa|ohg|gbr|ug|e\.\s?v\.|se|sa|s\.a\.?|sarl|s\.a\.r\.l\.?|sas|snc|eurl|bv|b\.v\.?"
    r"|nv|n\.v\.?|vof|ltd|limited|llc|inc|plc|llp|corp|co\.?|group|gruppe|groupe|gruppo|grupo|holding|s\.?p\.?a\.?"
    r"|s\.?r\.?l\.?|s\.?n\.?c\.?|s\.?l\.?|s\.?l\.?l\.?|s\.?a\.?t\.?|s\.?coop\.?|sons|partners?|& co|cie"
    r"|associates|associés|asociados|e figli|y cía|stiftung|verein|foundation)(?=$|[\s,.)])"
)
