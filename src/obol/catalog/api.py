"""REST routes for price plans. A plan is sent in the catalog file's format (one `plans:` entry);
a change to its priced content makes a new version effective from `effective_from`."""
from datetime import date
from typing import Annotated, Any

from ninja import Field, FilterLookup, FilterSchema, Query, Router, Schema
from ninja.pagination import LimitOffsetPagination, paginate

from obol.api.idempotency import idempotent
from obol.api.schemas import ERRORS
from obol.catalog import services
from obol.catalog.models import PricePlan
from obol.core.errors import Conflict, ValidationFailed

router = Router(tags=["catalog"])


class PlanIn(Schema):
    """One plan in the catalog file format (docs/catalog-format.md). The charges and allowances are
    checked by the catalog loader, so a bad one gets the same error as in a file."""

    code: str
    name: str
    description: str = ""
    currency: str | None = Field(None, description="Default: the tenant's currency")
    reseller: str | None = Field(None, description="Reseller code: sold only by that reseller")
    active: bool = True
    bill_during_suspension: bool = False
    charges: list[dict[str, Any]] = Field(
        [], description="type recurring (price, period, billing, prorate) | one_time (price, event) | "
        "quantity (model per_unit/graduated/volume/package, price, package_size, tiers) | "
        "usage (service, rate_table); code, name, product, tax_category"
    )
    allowances: list[dict[str, Any]] = Field([], description="service, amount, unit, period, prorate")
    effective_from: date | None = Field(
        None, description="First day of the new version when the priced content changes (default: today)"
    )

    def document(self) -> dict:
        return self.model_dump(exclude_unset=True, exclude={"effective_from"})


class VersionOut(Schema):
    number: int
    effective_from: date
    bill_during_suspension: bool
    charges: list[dict[str, Any]]
    allowances: list[dict[str, Any]]


class PlanOut(Schema):
    id: int
    code: str
    name: str
    description: str
    currency: str
    reseller: str | None = Field(None, alias="reseller.code")
    active: bool
    versions: list[VersionOut]

    @staticmethod
    def resolve_versions(plan: PricePlan) -> list[dict]:
        result = []
        for version in plan.versions.order_by("number"):
            document = services.plan_document(version)
            result.append({"number": version.number, "effective_from": version.effective_from,
                           "bill_during_suspension": version.bill_during_suspension,
                           "charges": document["charges"], "allowances": document["allowances"]})
        return result


class PlanPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = None
    active: bool | None = Field(None, description="Open for new subscriptions")


class PlanFilter(FilterSchema):
    active: bool | None = None
    currency: str | None = None
    q: Annotated[str | None, FilterLookup(["code__icontains", "name__icontains"])] = None


@router.get("/plans", response=list[PlanOut], summary="List price plans with their versions")
@paginate(LimitOffsetPagination)
def list_plans(request, filters: Query[PlanFilter]):
    return filters.filter(PricePlan.objects.select_related("reseller"))


@router.post("/plans", response={201: PlanOut, **ERRORS}, summary="Create a price plan")
@idempotent(PlanOut)
def create_plan(request, payload: PlanIn):
    if PricePlan.objects.filter(code=payload.code).exists():
        raise Conflict(f"code: plan {payload.code!r} exists; PUT /plans/{{id}} changes it", field="code")
    plan, _ = services.apply_plan(payload.document(), actor=request.actor, effective_from=payload.effective_from)
    return plan


@router.get("/plans/{plan_id}", response={200: PlanOut, **ERRORS}, summary="Get a price plan")
def get_plan(request, plan_id: int):
    return PricePlan.objects.get_or_404("plan", pk=plan_id)


@router.put("/plans/{plan_id}", response={200: PlanOut, **ERRORS},
            summary="Replace a plan's content (a new version when its priced content changed)")
def replace_plan(request, plan_id: int, payload: PlanIn):
    plan = PricePlan.objects.get_or_404("plan", pk=plan_id)
    if payload.code != plan.code:
        raise ValidationFailed(f"code: this is plan {plan.code!r}; the code cannot change", field="code")
    plan, _ = services.apply_plan(payload.document(), actor=request.actor, effective_from=payload.effective_from)
    return plan


@router.patch("/plans/{plan_id}", response={200: PlanOut, **ERRORS},
              summary="Change a plan's name, description or whether it is open for sale")
def update_plan(request, plan_id: int, payload: PlanPatch):
    plan = PricePlan.objects.get_or_404("plan", pk=plan_id)
    return services.update_plan_details(request.actor, plan, **payload.dict(exclude_unset=True))
