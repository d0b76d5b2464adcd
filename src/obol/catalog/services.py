"""Catalog use cases: load a catalog document, create or change one plan, copy a plan version.

Each runs in one transaction, so a document with any problem changes nothing. Loading is
idempotent: a plan's priced content (charges, tiers, allowances, bill_during_suspension) is
fingerprinted, and only a plan whose content differs from its latest version gets a new version,
effective from a date after that version's. Versions are never modified here. Names and
descriptions of services, products and plans are not priced content: they change in place.
Every created or changed row leaves an audit row.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db import transaction
from django.db.models import Max

from obol.catalog import loader
from obol.catalog.loader import Problem, join_path
from obol.catalog.models import Allowance, Charge, ChargeTier, PricePlan, PricePlanVersion, Product, Service
from obol.catalog.rate_models import RateTable
from obol.core import audit, clock
from obol.core.actors import Actor
from obol.core.errors import ValidationFailed
from obol.core.fields import canonical_text
from obol.core.tenancy import current_tenant
from obol.core.units import get_unit


@dataclass
class Tally:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


@dataclass
class LoadReport:
    source: str
    services: Tally = field(default_factory=Tally)
    products: Tally = field(default_factory=Tally)
    plans: Tally = field(default_factory=Tally)
    new_versions: int = 0

    @property
    def changed(self) -> bool:
        return any(t.created or t.updated for t in (self.services, self.products, self.plans))

    def __str__(self) -> str:
        return (f"{self.source}: services {self.services}; products {self.products}; plans {self.plans}; "
                f"{self.new_versions} new plan version{'' if self.new_versions == 1 else 's'}")


# --- priced content and its fingerprint ------------------------------------------------------


def _number(value):
    return None if value is None else canonical_text(value)


def _content(bill_during_suspension: bool, charges: list[tuple[Charge, list[ChargeTier]]],
             allowances: list[Allowance]) -> dict:
    """The priced content of a version in one canonical form, from saved or unsaved rows."""
    return {
        "bill_during_suspension": bill_during_suspension,
        "charges": [
            {
                "code": c.code, "name": c.name, "kind": c.kind, "tax_category": c.tax_category,
                "product": c.product.code if c.product else None,
                "service": c.service.code if c.service else None,
                "price": _number(c.price), "period": c.period, "billing": c.billing, "prorate": c.prorate,
                "event": c.event, "model": c.model, "package_size": _number(c.package_size),
                "rate_table": c.rate_table,
                "tiers": [[_number(t.up_to), _number(t.unit_price), _number(t.flat_fee)] for t in tiers],
            }
            for c, tiers in charges
        ],
        "allowances": [_allowance_content(a) for a in allowances],
    }


def _allowance_content(allowance: Allowance) -> dict:
    content = {"service": allowance.service.code, "amount": _number(allowance.amount), "unit": allowance.unit,
               "period": allowance.period, "prorate": allowance.prorate}
    if allowance.rollover_cap is not None:
        # Only when set: versions fingerprinted before rollover existed keep their fingerprint.
        content["rollover_cap"] = _number(allowance.rollover_cap)
    return content


def content_hash(content: dict) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _saved_rows(version: PricePlanVersion):
    charges = [(c, list(c.tiers.order_by("position", "pk")))
               for c in version.charges.select_related("product", "service").order_by("position", "pk")]
    allowances = list(version.allowances.select_related("service").order_by("position", "pk"))
    return charges, allowances


def version_content(version: PricePlanVersion) -> dict:
    """The priced content of a saved version (what `content_hash` fingerprints)."""
    return _content(version.bill_during_suspension, *_saved_rows(version))


def refresh_content_hash(version: PricePlanVersion) -> str:
    """Recompute a version's fingerprint after its rows were edited (the admin calls this)."""
    fingerprint = content_hash(version_content(version))
    if fingerprint != version.content_hash:
        version.content_hash = fingerprint
        version.save(update_fields=["content_hash"])
    return fingerprint


def plan_document(version: PricePlanVersion) -> dict:
    """One version of a plan in the file format of one entry of `plans:` (parse_plan reads it back)."""
    plan = version.plan
    charges, allowances = _saved_rows(version)
    return {
        "code": plan.code, "name": plan.name, "description": plan.description, "currency": plan.currency,
        "reseller": plan.reseller.code if plan.reseller_id else None, "active": plan.active,
        "bill_during_suspension": version.bill_during_suspension,
        "charges": [_charge_document(c, tiers) for c, tiers in charges],
        "allowances": [
            {"service": a.service.code, "amount": _number(a.amount), "unit": a.unit, "period": a.period,
             "prorate": a.prorate, "rollover_cap": _number(a.rollover_cap)}
            for a in allowances
        ],
    }


def _charge_document(charge: Charge, tiers: list[ChargeTier]) -> dict:
    doc = {"type": charge.kind, "code": charge.code, "name": charge.name, "tax_category": charge.tax_category}
    if charge.product_id:
        doc["product"] = charge.product.code
    if charge.kind == Charge.Kind.RECURRING:
        doc |= {"price": _number(charge.price), "period": charge.period, "billing": charge.billing,
                "prorate": charge.prorate}
    elif charge.kind == Charge.Kind.ONE_TIME:
        doc |= {"price": _number(charge.price), "event": charge.event}
    elif charge.kind == Charge.Kind.QUANTITY:
        doc |= {"model": charge.model, "period": charge.period, "billing": charge.billing,
                "prorate": charge.prorate}
        if charge.price is not None:
            doc["price"] = _number(charge.price)
        if charge.package_size is not None:
            doc["package_size"] = _number(charge.package_size)
        if charge.model in (Charge.Model.GRADUATED, Charge.Model.VOLUME):
            doc["tiers"] = [{"up_to": _number(t.up_to), "unit_price": _number(t.unit_price),
                             "flat_fee": _number(t.flat_fee)} for t in tiers]
    else:
        doc |= {"service": charge.service.code if charge.service_id else None,
                "rate_table": charge.rate_table}
    return doc


# --- writing ---------------------------------------------------------------------------------


def _name_from_code(code: str) -> str:
    return code.replace("-", " ").replace("_", " ").capitalize()


class _Writer:
    """Writes one document's services, products and plans for one actor, with one audit reason."""

    def __init__(self, *, source: str, actor: Actor | None = None, reason: str = ""):
        self.source, self.actor, self.reason = source, actor, reason
        self.services = {s.code: s for s in Service.objects.all()}
        self.products = {p.code: p for p in Product.objects.all()}
        # Checked only once the tenant has rate tables, so catalogs loaded before tariffs keep loading.
        self.rate_tables = set(RateTable.objects.values_list("code", flat=True))

    def fail(self, path: str, reason: str) -> ValidationFailed:
        return loader.invalid(self.source, [(path, reason)])

    def upsert(self, model, code: str, values: dict, path: str, fixed: dict[str, str] | None = None):
        """Create the row with this code, or update its `values` in place; the `fixed` ones (name: why)
        may not change."""
        label = model._meta.model_name
        obj = model.objects.filter(code=code).first()
        if obj is None:
            obj = model.objects.create(code=code, **values)
            audit.record(self.actor, f"{label}.create", obj, {"code": code, **values}, self.reason)
            return obj, "created"
        for name, why in (fixed or {}).items():
            if getattr(obj, name) != values[name]:
                raise self.fail(join_path(path, name),
                                f"cannot change from {getattr(obj, name)} to {values[name]}: {why}; "
                                "use a new code instead")
        changes = audit.diff({name: getattr(obj, name) for name in values}, values)
        if not changes:
            return obj, "unchanged"
        for name, value in values.items():
            setattr(obj, name, value)
        obj.save(update_fields=list(values))
        audit.record(self.actor, f"{label}.change", obj, changes, self.reason)
        return obj, "updated"

    def service(self, spec: loader.ServiceSpec, path: str) -> str:
        values = {"name": spec.name, "kind": spec.kind, "unit": spec.unit}
        why = f"usage and allowances of service {spec.code!r} already count in it"
        fixed = dict.fromkeys(("kind", "unit"), why)
        self.services[spec.code], outcome = self.upsert(Service, spec.code, values, path, fixed)
        return outcome

    def product(self, spec: loader.ProductSpec, path: str) -> str:
        values = {"name": spec.name, "description": spec.description, "tax_category": spec.tax_category,
                  "revenue_account": spec.revenue_account}
        self.products[spec.code], outcome = self.upsert(Product, spec.code, values, path)
        return outcome

    def reference_problems(self, plan: loader.PlanSpec, prefix: str) -> list[Problem]:
        """Unknown service, product and reseller codes; allowances in a unit their service cannot count."""
        problems = []
        if plan.reseller and _reseller(plan.reseller) is None:
            problems.append((join_path(prefix, "reseller"), f"unknown reseller {plan.reseller!r}"))
        usage_kinds: dict[str, int] = {}  # a record says only its kind (voice, sms...): one charge each
        for index, charge in enumerate(plan.charges):
            path = join_path(prefix, f"charges[{index}]")
            service = self.services.get(getattr(charge, "service", None) or "")
            if isinstance(charge, loader.UsageChargeSpec) and service is not None:
                if service.kind in usage_kinds:
                    problems.append((join_path(path, "service"), (
                        f"a second usage charge for {service.kind} (also charges[{usage_kinds[service.kind]}]): "
                        "usage records name only their kind, so a plan has one usage charge per kind; put the "
                        "destinations of both in one rate table")))
                usage_kinds.setdefault(service.kind, index)
            if charge.product and charge.product not in self.products:
                problems.append((join_path(path, "product"), f"unknown product {charge.product!r}"))
            if isinstance(charge, loader.UsageChargeSpec) and charge.service not in self.services:
                problems.append((join_path(path, "service"), f"unknown service {charge.service!r}"))
            if isinstance(charge, loader.UsageChargeSpec) and self.rate_tables \
                    and charge.rate_table not in self.rate_tables:
                problems.append((join_path(path, "rate_table"), f"unknown rate table {charge.rate_table!r}"))
        for index, allowance in enumerate(plan.allowances):
            path = join_path(prefix, f"allowances[{index}]")
            service = self.services.get(allowance.service)
            if service is None:
                problems.append((join_path(path, "service"), f"unknown service {allowance.service!r}"))
                continue
            counted, given = get_unit(service.unit), get_unit(allowance.unit)
            if counted != given and (counted.dimension is None or counted.dimension != given.dimension):
                reason = f"{allowance.unit} cannot count service {service.code!r}, measured in {service.unit}"
                problems.append((join_path(path, "unit"), reason))
        return problems

    def rows(self, plan: loader.PlanSpec):
        """The plan's charges (with tiers) and allowances as unsaved rows."""
        charges = []
        for spec in plan.charges:
            product = self.products.get(spec.product) if spec.product else None
            charge = Charge(
                code=spec.code, name=spec.name or _name_from_code(spec.code), kind=spec.type, product=product,
                tax_category=spec.tax_category or (product.tax_category if product else "standard"),
                price=getattr(spec, "price", None), period=getattr(spec, "period", ""),
                billing=getattr(spec, "billing", ""), prorate=getattr(spec, "prorate", False),
                event=getattr(spec, "event", ""), model=getattr(spec, "model", ""),
                package_size=getattr(spec, "package_size", None), rate_table=getattr(spec, "rate_table", ""),
                service=self.services[spec.service] if isinstance(spec, loader.UsageChargeSpec) else None,
            )
            tiers = [ChargeTier(up_to=t.up_to, unit_price=t.unit_price, flat_fee=t.flat_fee)
                     for t in (getattr(spec, "tiers", None) or [])]
            charges.append((charge, tiers))
        allowances = [
            Allowance(service=self.services[a.service], amount=a.amount, unit=a.unit, period=a.period,
                      prorate=a.prorate, rollover_cap=a.rollover_cap)
            for a in plan.allowances
        ]
        return charges, allowances

    def plan(self, spec: loader.PlanSpec, prefix: str, *, currency: str, day: date):
        """Upsert the plan; add a version from `day` when its priced content changed.
        Returns (plan, outcome, the new version or None)."""
        values = {"name": spec.name, "description": spec.description, "currency": currency,
                  "reseller": _reseller(spec.reseller) if spec.reseller else None, "active": spec.active}
        plan, outcome = self.upsert(PricePlan, spec.code, values, prefix,
                                    {"currency": f"the versions of plan {spec.code!r} are priced in it"})
        charges, allowances = self.rows(spec)
        content = _content(spec.bill_during_suspension, charges, allowances)
        fingerprint = content_hash(content)
        latest = plan.latest_version()
        if latest is not None and latest.content_hash == fingerprint:
            return plan, outcome, None
        if latest is not None and day <= latest.effective_from:
            raise self.fail(prefix or "effective_from",
                            f"{_rewrites_history(plan, latest)}; give an effective_from after that date")
        if latest is not None and day < _today():
            raise self.fail(prefix or "effective_from",
                            f"would reprice days already past: a new version of plan {plan.code} may start "
                            f"today ({_today()}) or later, not {day}")
        version = PricePlanVersion.objects.create(
            plan=plan, number=_next_number(plan), effective_from=day,
            bill_during_suspension=spec.bill_during_suspension, content_hash=fingerprint,
        )
        _save_rows(version, charges, allowances)
        audit.record(self.actor, "priceplanversion.create", version, content, self.reason)
        return plan, ("updated" if outcome == "unchanged" else outcome), version


def _reseller(code: str):
    from obol.customers.models import Reseller

    return Reseller.objects.filter(code=code).first()


def _save_rows(version: PricePlanVersion, charges, allowances) -> None:
    for position, (charge, tiers) in enumerate(charges):
        charge.version, charge.position = version, position
        charge.save()
        for tier_position, tier in enumerate(tiers):
            tier.charge, tier.position = charge, tier_position
            tier.save()
    for position, allowance in enumerate(allowances):
        allowance.version, allowance.position = version, position
        allowance.save()


def _rewrites_history(plan: PricePlan, latest: PricePlanVersion) -> str:
    return (f"would rewrite history: plan {plan.code} version {latest.number} is already effective "
            f"from {latest.effective_from}")


def _next_number(plan: PricePlan) -> int:
    return (plan.versions.aggregate(highest=Max("number"))["highest"] or 0) + 1


def _today() -> date:
    return clock.today(current_tenant().timezone)


# --- use cases -------------------------------------------------------------------------------


def load_catalog(document: dict | str, *, source: str, actor: Actor,
                 effective_from: date | None = None) -> LoadReport:
    """Load a catalog document (YAML text or a parsed dict) into the tenant in scope, all or nothing.

    New plan versions are effective from `effective_from`, else the document's `effective_from`,
    else today. Loading the same document again changes nothing."""
    actor.require_write()
    spec = loader.parse_catalog(document, source=source)
    tenant = current_tenant()
    day = effective_from or spec.effective_from or _today()
    report = LoadReport(source)
    with transaction.atomic():
        writer = _Writer(source=source, actor=actor, reason=f"catalog load {source}")
        for index, service in enumerate(spec.services):
            report.services.add(writer.service(service, f"services[{index}]"))
        for index, product in enumerate(spec.products):
            report.products.add(writer.product(product, f"products[{index}]"))
        problems = [problem for index, plan in enumerate(spec.plans)
                    for problem in writer.reference_problems(plan, f"plans[{index}]")]
        if problems:
            raise loader.invalid(source, problems)
        for index, plan in enumerate(spec.plans):
            currency = plan.currency or spec.currency or tenant.default_currency
            _, outcome, version = writer.plan(plan, f"plans[{index}]", currency=currency, day=day)
            report.plans.add(outcome)
            report.new_versions += version is not None
    return report


def apply_plan(plan_data: dict | str, *, actor: Actor, effective_from: date | None = None,
               source: str = "api") -> tuple[PricePlan, bool]:
    """Create or change one plan from the schema of one `plans:` entry (services and products must exist).

    Returns the plan and whether a new version was created (effective from `effective_from`, else today)."""
    actor.require_write()
    spec = loader.parse_plan(plan_data, source=source)
    tenant = current_tenant()
    with transaction.atomic():
        writer = _Writer(source=source, actor=actor, reason=f"plan {spec.code} saved from {source}")
        problems = writer.reference_problems(spec, "")
        if problems:
            raise loader.invalid(source, problems)
        plan, _, version = writer.plan(spec, "", currency=spec.currency or tenant.default_currency,
                                       day=effective_from or _today())
    return plan, version is not None


def check_version(version: PricePlanVersion) -> None:
    """Check an edited version against the rules of the file format (the admin calls this after a save)."""
    source = f"{version.plan.code} version {version.number}"
    spec = loader.parse_plan(plan_document(version), source=source)
    problems = _Writer(source=source).reference_problems(spec, "")
    if problems:
        raise loader.invalid(source, problems)


def copy_version(version: PricePlanVersion, *, actor: Actor,
                 effective_from: date | None = None) -> PricePlanVersion:
    """A new version of the plan with the same charges, tiers and allowances, effective from
    `effective_from` (default: tomorrow, or the day after the plan's latest version), to be edited."""
    actor.require_write()
    with transaction.atomic():
        plan = version.plan
        latest = plan.latest_version()
        day = effective_from or max(_today() + timedelta(days=1), latest.effective_from + timedelta(days=1))
        if day <= latest.effective_from:
            raise ValidationFailed(_rewrites_history(plan, latest), field="effective_from",
                                   code="invalid_catalog")
        if day <= _today():
            raise ValidationFailed(f"a copy must start after today ({_today()}) so that it can be edited",
                                   field="effective_from", code="invalid_catalog")
        charges, allowances = _saved_rows(version)
        copy = PricePlanVersion.objects.create(
            plan=plan, number=_next_number(plan), effective_from=day,
            bill_during_suspension=version.bill_during_suspension,
            content_hash=content_hash(_content(version.bill_during_suspension, charges, allowances)),
        )
        for charge, tiers in charges:
            charge.pk = None
            charge._state.adding = True
            for tier in tiers:
                tier.pk = None
                tier._state.adding = True
        for allowance in allowances:
            allowance.pk = None
            allowance._state.adding = True
        _save_rows(copy, charges, allowances)
        audit.record(actor, "priceplanversion.create", copy,
                     {"copied_from": version.number, **version_content(copy)},
                     f"copied from version {version.number} to be edited")
    return copy


PLAN_DETAILS = ("name", "description", "active")


@transaction.atomic
def update_plan_details(actor: Actor, plan: PricePlan, reason: str = "", **changes) -> PricePlan:
    """Change what is not priced content (name, description, open for sale) in place."""
    actor.require_write()
    for name in changes:
        if name not in PLAN_DETAILS:
            raise ValidationFailed(f"{name}: cannot be changed here; send the whole plan to make a new version",
                                   field=name)
    before = {name: getattr(plan, name) for name in changes}
    for name, value in changes.items():
        setattr(plan, name, value)
    plan.save(update_fields=list(changes))
    audit.record(actor, "priceplan.change", plan, audit.diff(before, changes), reason)
    return plan
