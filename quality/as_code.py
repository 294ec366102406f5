"""Quality's definitions as code (``atlas.definitions``): each dataset's checks, written inside the dataset."""

from __future__ import annotations

from atlas.definitions.specs import Kind

from .models import Check

KINDS = [Kind("checks", Check, parent=("dataset", "datasets"), order=40)]
