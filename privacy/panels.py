"""The dataset page's "Subject keys" panel (issue 18, guided privacy work).

An operator meets subject keys where the personal data is: on the dataset page, next to its PII
findings. The panel lists the dataset's keys (the columns a data-subject request searches), confirms a
proposed one with one button, proposes keys from the confirmed findings and lineage, and names the
columns whose confirmed e-mail or phone finding is no key yet. The buttons post to the subject-key
admin's views (``privacy.admin.SubjectKeyAdmin``), which call :mod:`privacy.keys` and come back here.

Contributed as ``dataset_panels`` (``atlas.extensions``). Column names, kinds and counts only: never
a value.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse

from atlas.admin_kit import badge
from pipelines.models import Dataset

from .keys import ENTITY_KINDS, never_keys
from .models import SubjectKey


def candidates(dataset: Dataset) -> list[tuple[str, str]]:
    """(column, kind) of the dataset's confirmed e-mail/phone findings that no key covers yet, nor may."""
    from compliance.models import PiiFinding

    keyed = set(SubjectKey.objects.filter(dataset=dataset).values_list("column", flat=True))
    never = {column for (ds, column) in never_keys() if ds == dataset.pk}
    found = PiiFinding.objects.filter(dataset=dataset, status=PiiFinding.Status.CONFIRMED, free_text=False,
                                      entity__in=list(ENTITY_KINDS)).order_by("column")
    out: list[tuple[str, str]] = []
    for column, entity in found.values_list("column", "entity"):
        if column not in keyed and column not in never and (column, ENTITY_KINDS[entity]) not in out:
            out.append((column, ENTITY_KINDS[entity]))
    return out


def dataset_panel(request: HttpRequest, dataset: Dataset) -> str | None:
    user = getattr(request, "user", None)
    if user is None or not user.has_perm("privacy.view_subjectkey"):
        return None
    from compliance.models import PiiFinding

    keys = list(SubjectKey.objects.filter(dataset=dataset).select_related("derived_from__dataset").order_by("column"))
    has_pii = PiiFinding.objects.filter(
        dataset=dataset, status__in=[PiiFinding.Status.CONFIRMED, PiiFinding.Status.PROPOSED]).exists()
    if not keys and not has_pii:
        return None  # nothing personal found here: no key to think about
    here = reverse("admin:pipelines_dataset_change", args=[dataset.pk]) + "#privacy-keys"
    context = {
        "dataset": dataset,
        "keys": [(key, badge(key.get_status_display(), "#198754" if key.status == SubjectKey.Status.CONFIRMED
                              else "#0d6efd")) for key in keys],
        "proposed": sum(1 for key in keys if key.status == SubjectKey.Status.PROPOSED),
        "candidates": candidates(dataset),
        "can_confirm": user.has_perm("privacy.change_subjectkey"),
        "can_add": user.has_perm("privacy.add_subjectkey"),
        "next": here,
    }
    return render_to_string("admin/privacy/_dataset_keys.html", context, request=request)
