"""What a definition kind is: a model, its natural key, its references, and how its fields are written.

Each app contributes the kinds of its own models (``definition_kinds``, see
``atlas.extensions``): pipelines its sources, datasets, pipelines and steps; quality its
checks. The fields written are the model's own editable, concrete fields — so a field an
app adds is written and read without touching this module — except the ones a kind leaves
out (uploads, computed fields). References to other kinds are written as their natural key
(a dataset's name, not its id), and long text fields (step SQL) go to files of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from django.db import models

from atlas import extensions

# Never definitions: identities, bookkeeping, what Atlas computes.
ALWAYS_LEFT_OUT = frozenset({"id", "created_at", "updated_at"})


@dataclass(frozen=True)
class Kind:
    """One kind of definition, as an app contributes it.

    ``name``: its section in the project (``sources``); ``model``: the model class;
    ``key``: the fields that name an object among its parent's (``("name",)``);
    ``refs``: foreign-key field -> the kind it names (``{"output": "datasets"}``);
    ``parent``: (foreign-key field, parent kind) for kinds written inside their parent's entry
    (a pipeline's ``steps``); ``files``: text field -> file suffix, written beside the YAML
    (``{"sql": ".sql"}``); ``leave_out``: fields that are not definitions;
    ``one_file_each``: each object in a file of its own (``pipelines/<name>.yml``);
    ``order``: apply order (what others reference first); ``after_apply``: called with the
    objects of this kind an apply saved or deleted, inside its transaction, to check what only
    the whole shows (a pipeline's steps must still order); raising refuses the apply.
    ``single``: at most one per parent (a dataset's retention policy): no key of its own
    (``key=()``), written as one object inside the parent's entry, not a list.
    ``include``: narrows the model's queryset to the objects that are definitions (column
    policies applied by default from an unreviewed finding are not). ``before_save``: called
    with the object an apply is about to save (after its fields are set, before validation).
    ``to_project`` / ``from_project``: an object's field values as the files hold them, from
    the database's (a source's absolute path made relative to its data root), and back.
    ``apply_scope``: a context manager factory entered around every apply (once, whichever kinds
    name it), so that what validating each object reads is read once for all of them (pipelines:
    the catalogue and each step's validated SQL, ``pipelines.memo``).
    """

    name: str
    model: type[models.Model]
    key: tuple[str, ...] = ("name",)
    refs: dict[str, str] = field(default_factory=dict)
    parent: tuple[str, str] | None = None
    files: dict[str, str] = field(default_factory=dict)
    leave_out: frozenset[str] = frozenset()
    one_file_each: bool = False
    order: int = 100
    after_apply: Callable[[list[Any]], None] | None = None
    single: bool = False
    include: Callable[[models.QuerySet], models.QuerySet] | None = None
    before_save: Callable[[Any], None] | None = None
    to_project: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    from_project: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    apply_scope: Callable[[], AbstractContextManager[Any]] | None = None

    def fields(self) -> list[models.Field]:
        """The model's fields that a definition holds, in model order."""
        out = []
        for f in self.model._meta.get_fields():
            if not getattr(f, "concrete", False) or f.auto_created or not f.editable:
                continue
            if f.name in ALWAYS_LEFT_OUT or f.name in self.leave_out or f.many_to_many:
                continue
            if isinstance(f, models.FileField):
                continue  # an upload is data, not a definition
            out.append(f)
        return out

    def field(self, name: str) -> models.Field:
        return self.model._meta.get_field(name)

    def objects(self) -> models.QuerySet:
        """The model's objects that are definitions of this kind."""
        qs = self.model._default_manager.all()
        return qs if self.include is None else self.include(qs)

    def own(self, key: tuple[str, ...]) -> tuple[str, ...]:
        """The part of a full key that names the object among its parent's (empty for a single kind)."""
        return key[len(key) - len(self.key):]

    def parent_part(self, key: tuple[str, ...]) -> tuple[str, ...]:
        return key[: len(key) - len(self.key)]


def kinds() -> list[Kind]:
    """Every contributed kind, in apply order."""
    found = extensions.contributions("definition_kinds")
    names = [k.name for k in found]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"Two apps contribute the definition kind(s) {', '.join(dup)}.")
    return sorted(found, key=lambda k: (k.order, names.index(k.name)))


def by_name() -> dict[str, Kind]:
    return {k.name: k for k in kinds()}


def default_of(f: models.Field) -> Any:
    if f.has_default():
        return f.get_default()
    if f.null:
        return None
    if isinstance(f, models.CharField | models.TextField):
        return ""
    return None
