"""`obol vouchers generate|list|block|unblock|cancel|prune`: voucher batches from the command line.

`generate` writes the batch's codes to a CSV file (code, value, unit, expires) created for it, in
the same transaction as the batch: if the file cannot be written, no batch exists. It is the only
time the codes are shown.
"""
from __future__ import annotations

import os
from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from obol.balances import vouchers
from obol.balances.models import VoucherBatch
from obol.core.actors import Actor
from obol.core.management.base import reported_errors, tenant_from_option
from obol.core.money import Amount
from obol.core.tenancy import current_tenant, tenant_context


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--expires: {text!r} is not a date (YYYY-MM-DD)") from None


def _open_new(path: str):
    """A new file only the owner can read (it holds redeemable codes); an existing file is kept."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CommandError(f"--csv: {path} exists already; codes are never written over another file") \
            from None
    except OSError as exc:
        raise CommandError(f"--csv: cannot create {path}: {exc.strerror}") from None
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


class Command(BaseCommand):
    help = "Voucher batches: generate (codes to a CSV, shown once), list, block, unblock, cancel, prune."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        gen = sub.add_parser("generate", help="generate a batch and write its codes to a CSV file")
        gen.add_argument("--tenant", help="tenant code (default: the only tenant)")
        gen.add_argument("--count", type=int, required=True)
        gen.add_argument("--value", required=True, help="what one voucher is worth, e.g. 10.00 or 60")
        gen.add_argument("--unit", help="EUR, minute, sms, megabyte, point, ... (default: tenant's currency)")
        gen.add_argument("--expires", required=True, metavar="YYYY-MM-DD",
                         help="last day a voucher can be redeemed")
        gen.add_argument("--name", help="batch name, unique in the tenant (default: VB-000001, ...)")
        gen.add_argument("--validity-days", dest="validity_days", type=int,
                         help="the pocket lasts this many days after redemption (default: no end)")
        gen.add_argument("--services", default="", help="comma-separated service codes the pocket pays for")
        gen.add_argument("--csv", required=True, help="new file for the codes ('-' for standard output)")
        listing = sub.add_parser("list", help="list batches with their counts")
        listing.add_argument("--tenant")
        for action, text in (("block", "stop redemptions of a batch"), ("unblock", "allow them again"),
                             ("cancel", "stop them for good")):
            change = sub.add_parser(action, help=text)
            change.add_argument("batch", help="batch name (or id)")
            change.add_argument("--tenant")
            change.add_argument("--reason", default="")
        prune = sub.add_parser("prune", help="delete failed-attempt records older than --days")
        prune.add_argument("--tenant")
        prune.add_argument("--days", type=int, default=30)

    def handle(self, *args, action: str, **options):
        actor = Actor.process(f"vouchers {action}")
        with tenant_context(tenant_from_option(options.get("tenant"))), reported_errors():
            if action == "generate":
                self.generate(actor, options)
            elif action == "list":
                self.list()
            elif action == "prune":
                count = vouchers.prune_failures(actor, older_than=timedelta(days=options["days"]))
                self.stdout.write(f"{count} failed-attempt record(s) deleted")
            else:
                change = {"block": vouchers.block_batch, "unblock": vouchers.unblock_batch,
                          "cancel": vouchers.cancel_batch}[action]
                batch = change(actor, vouchers.find_batch(options["batch"]), reason=options["reason"])
                self.stdout.write(f"voucher batch {batch.name} is {batch.status}")

    def generate(self, actor: Actor, options) -> None:
        value = Amount(options["value"], options["unit"] or current_tenant().default_currency)
        expires = _day(options["expires"])
        services = [s.strip() for s in options["services"].split(",") if s.strip()]
        path = None if options["csv"] == "-" else options["csv"]
        out = _open_new(path) if path else self.stdout
        try:
            with transaction.atomic():
                batch, codes = vouchers.generate_batch(
                    actor, name=options["name"], count=options["count"], value=value, expires_at=expires,
                    validity_days=options["validity_days"], services=services)
                vouchers.write_csv(out, batch, codes)
                if path:
                    out.close()  # a failed write or flush rolls the batch back
        except BaseException:
            if path:
                out.close()
                os.unlink(path)
            raise
        where = f"in {path}" if path else "above"
        (self.stdout if path else self.stderr).write(
            f"voucher batch {batch.name}: {batch.issued} x {value} until {vouchers.last_valid_day(batch)}; "
            f"the codes are {where}. This is the only time they are shown: Obol keeps only a keyed hash "
            "of each.")

    def list(self) -> None:
        for batch in vouchers.with_counts(VoucherBatch.objects.all()):
            c = vouchers.counts(batch)
            self.stdout.write("\t".join([
                batch.name, f"{vouchers.face_value(batch)} {batch.unit}", batch.status,
                f"until {vouchers.last_valid_day(batch)}", f"issued {c['issued']}",
                f"redeemed {c['redeemed']}", f"expired {c['expired']}", f"available {c['available']}",
            ]))
