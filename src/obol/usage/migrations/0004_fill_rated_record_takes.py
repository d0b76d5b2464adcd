"""Records rated before 0003 had their allowance takes booked as one ledger debit per record (the
reference is the record key) and no `takes`; rerate gives units back from `takes` only, so fill
it from those debits (unit pockets only: money was booked per chunk, never per record)."""
from django.db import migrations

BATCH = 2000


def fill_takes(apps, schema_editor):
    RatedRecord = apps.get_model("usage", "RatedRecord")
    LedgerEntry = apps.get_model("balances", "LedgerEntry")
    pending = RatedRecord.objects.filter(takes="", included__gt=0).order_by("pk")
    last = 0
    while True:
        batch = list(pending.filter(pk__gt=last)[:BATCH])
        if not batch:
            return
        last = batch[-1].pk
        by_key = {(r.tenant_id, r.record_key): r for r in batch}
        debits = (LedgerEntry.objects.filter(kind="debit", reference__in={r.record_key for r in batch})
                  .select_related("pocket").order_by("pk"))
        takes: dict = {}
        for entry in debits:
            record = by_key.get((entry.tenant_id, entry.reference))
            if record is not None and entry.pocket.unit != record.currency:
                takes.setdefault(record.pk, []).append(f"{entry.pocket_id}:{int(-entry.amount)}")
        changed = [r for r in batch if r.pk in takes]
        for record in changed:
            record.takes = ";".join(takes[record.pk])
        RatedRecord.objects.bulk_update(changed, ["takes"])


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0003_rated_record_bulk"),
        ("balances", "0002_promotion_promotionapplication_redemptionfailure_and_more"),
    ]

    operations = [migrations.RunPython(fill_takes, migrations.RunPython.noop)]
