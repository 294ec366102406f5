"""``manage.py dsr``: data-subject requests from the command line (the same service functions as the admin).

    dsr submit --kind erasure --id email=ann@example.com [--id customer_id=42] [--reference T-1] [--verified]
    dsr verify ID | dsr run ID | dsr verify-erasure ID | dsr export ID | dsr reject ID --reason TEXT
    dsr approve-expansion ID --note TEXT
    dsr show ID | dsr list [--overdue] | dsr keys [--propose] | dsr key DATASET COLUMN KIND [--hashed]
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from pipelines.models import Dataset, Trigger
from privacy import keys, service
from privacy.models import DataSubjectRequest, SubjectKey
from privacy.search import DsrError


class Command(BaseCommand):
    help = "Submit, verify, run, verify erasure, export or reject data-subject requests; list and propose subject keys."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        p = sub.add_parser("submit", help="Record a received request.")
        p.add_argument("--kind", choices=DataSubjectRequest.Kind.values, required=True)
        p.add_argument("--id", dest="ids", action="append", default=[], metavar="KIND=VALUE",
                       help="An identifier, e.g. email=ann@example.com (repeat for more).")
        p.add_argument("--reference", default="")
        p.add_argument("--verified", action="store_true", help="The identity is already checked: verify at once.")
        for name in ("verify", "run", "verify-erasure", "export", "show"):
            sub.add_parser(name).add_argument("request_id", type=int)
        p = sub.add_parser("reject")
        p.add_argument("request_id", type=int)
        p.add_argument("--reason", required=True)
        p = sub.add_parser("approve-expansion", help="Approve the expansion of a request under review.")
        p.add_argument("request_id", type=int)
        p.add_argument("--note", required=True, help="Why these identifiers are one person.")
        sub.add_parser("list").add_argument("--overdue", action="store_true")
        sub.add_parser("keys").add_argument("--propose", action="store_true", help="Propose keys first.")
        p = sub.add_parser("key", help="Declare a confirmed subject key.")
        p.add_argument("dataset")
        p.add_argument("column")
        p.add_argument("kind")
        p.add_argument("--hashed", action="store_true", help="The column holds HMAC hashes (a hash policy).")

    def handle(self, *args, action: str, **options) -> None:
        try:
            getattr(self, "do_" + action.replace("-", "_"))(**options)
        except (DsrError, keys.SubjectKeyError) as exc:
            raise CommandError(str(exc)) from exc

    def _get(self, request_id: int) -> DataSubjectRequest:
        req = DataSubjectRequest.objects.filter(pk=request_id).first()
        if req is None:
            raise CommandError(f"No data-subject request #{request_id}.")
        return req

    def _print(self, req: DataSubjectRequest) -> None:
        req.refresh_from_db()
        late = " OVERDUE" if req.is_overdue else ""
        self.stdout.write(f"{req}: {req.status}{late}, due {req.due_at:%Y-%m-%d}")
        for e in req.erasures.all():
            self.stdout.write(f"  {e.method:<10} {e.table:<40} {e.rows_removed:>8} row(s)" + (f" run #{e.run_id}" if e.run_id else ""))
        if req.proof:
            self.stdout.write(f"  verification: {req.proof.get('rows_found')} row(s) found in {len(req.proof.get('tables', []))} table(s)")
        for export in req.exports.all():
            state = "expired" if export.expired else f"expires {export.expires_at:%Y-%m-%d %H:%M}"
            self.stdout.write(f"  export #{export.pk}: {export.rows} row(s), {export.path} ({state})")
        if req.error:
            self.stdout.write(self.style.WARNING(f"  {req.error}"))

    def do_submit(self, *, kind: str, ids: list[str], reference: str, verified: bool, **_) -> None:
        identifiers: dict[str, list[str]] = {}
        for item in ids:
            k, sep, v = item.partition("=")
            if not sep:
                raise CommandError(f"--id {item!r}: write KIND=VALUE, e.g. email=ann@example.com.")
            identifiers.setdefault(k.strip(), []).append(v)
        req = service.submit(kind, identifiers, actor="cli", reference=reference)
        if verified:
            service.verify(req, actor="cli")
        self.stdout.write(self.style.SUCCESS(f"Submitted {req} (id {req.pk})."))
        self._print(req)

    def do_verify(self, *, request_id: int, **_) -> None:
        self._print(service.verify(self._get(request_id), actor="cli"))

    def do_run(self, *, request_id: int, **_) -> None:
        req = service.run(self._get(request_id), actor="cli", trigger=Trigger.CLI)
        self._print(req)
        if req.status != "completed":
            raise CommandError(f"{req} is not completed: {req.error}")

    def do_verify_erasure(self, *, request_id: int, **_) -> None:
        req = service.check_erasure(self._get(request_id), actor="cli")
        self._print(req)
        if req.residue:
            raise CommandError(f"{req}: references remain: {json.dumps(req.residue)}")

    def do_export(self, *, request_id: int, **_) -> None:
        export = service.create_export(self._get(request_id), actor="cli")
        self.stdout.write(self.style.SUCCESS(f"Export #{export.pk}: {export.rows} row(s) in {export.path}"))

    def do_reject(self, *, request_id: int, reason: str, **_) -> None:
        self._print(service.reject(self._get(request_id), actor="cli", reason=reason))

    def do_approve_expansion(self, *, request_id: int, note: str, **_) -> None:
        self._print(service.approve_expansion(self._get(request_id), actor="cli", note=note))

    def do_show(self, *, request_id: int, **_) -> None:
        self._print(self._get(request_id))

    def do_list(self, *, overdue: bool, **_) -> None:
        qs = DataSubjectRequest.objects.overdue() if overdue else DataSubjectRequest.objects.all()
        for req in qs:
            self.stdout.write(f"#{req.pk:<6} {req.kind:<8} {req.status:<12} due {req.due_at:%Y-%m-%d}"
                              + ("  OVERDUE" if req.is_overdue else ""))

    def do_keys(self, *, propose: bool, **_) -> None:
        if propose:
            created = keys.propose_keys(actor="cli")
            self.stdout.write(f"{len(created)} key(s) proposed.")
        for key in SubjectKey.objects.select_related("dataset"):
            self.stdout.write(f"{key.status:<10} {key}")

    def do_key(self, *, dataset: str, column: str, kind: str, hashed: bool, **_) -> None:
        ds = Dataset.objects.filter(name=dataset).first()
        if ds is None and "." in dataset:
            layer, _, table = dataset.partition(".")
            ds = Dataset.objects.filter(layer=layer, table=table).first()
        if ds is None:
            raise CommandError(f"Unknown dataset {dataset!r}: give its name or layer.table.")
        key = keys.declare_key(ds, column, kind=kind, storage="hashed" if hashed else "clear", actor="cli")
        self.stdout.write(self.style.SUCCESS(f"Confirmed {key}."))
