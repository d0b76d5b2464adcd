"""The catalog file format: YAML (or an already parsed dict) in, checked pydantic models out.

`parse_catalog` reads a whole catalog document, `parse_plan` one plan (the API's schema for a
plan is the same as a plan in the file). Nothing here touches the database: references to
services, products and resellers are resolved by `services.py`, which reports problems the same
way. Every problem names the source, the path in the document and the reason:

    samples/catalog-broken-price.yaml: plans[0].charges[0].price: '9,99' is not a decimal number

Amounts are exact. YAML numbers with a decimal point are read as `Decimal` from their literal
text (`9.99` is Decimal('9.99'), never the float 9.9900000000000002), numeric strings are
accepted, floats handed in from Python are refused. The format is described in
docs/catalog-format.md.
"""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from obol.core.errors import ValidationFailed
from obol.core.money import EXACT, to_decimal
from obol.core.units import MAX_DECIMALS, get_unit

FORMAT_VERSION = 1

Problem = tuple[str, str]  # (path in the document, reason)


def invalid(source: str, problems: list[Problem]) -> ValidationFailed:
    """The one error a bad catalog document gets: one line per problem, the first one's path as field."""
    lines = [f"{source}: {path}: {reason}" if path else f"{source}: {reason}" for path, reason in problems]
    return ValidationFailed("\n".join(lines), field=problems[0][0] or None, code="invalid_catalog")


def join_path(prefix: str, path: str) -> str:
    """`plans[2]` + `charges[0].price` -> `plans[2].charges[0].price`."""
    if not prefix:
        return path
    if not path:
        return prefix
    return prefix + (path if path.startswith("[") else "." + path)


# --- YAML ------------------------------------------------------------------------------------


class ExactLoader(yaml.SafeLoader):
    """SafeLoader that reads decimal numbers as Decimal from their text and refuses duplicate keys;
    a number or date it cannot read stays text, for the schema to refuse with its path."""

    def construct_exact_decimal(self, node):
        text = self.construct_scalar(node).replace("_", "")
        special = {".inf": "Infinity", "+.inf": "Infinity", "-.inf": "-Infinity", ".nan": "NaN"}
        try:
            return Decimal(special.get(text.lower(), text))
        except InvalidOperation:
            return text  # e.g. a sexagesimal 1:30.5; the amount check refuses it with its path

    def construct_plain_int(self, node):
        """Only plain decimal integers are numbers: YAML 1.1's 010 (octal), 0x10 and 1:30 stay text,
        for the schema to refuse with its path instead of reading 8, 16 or 90."""
        text = self.construct_scalar(node).replace("_", "")
        if re.fullmatch(r"[-+]?(0|[1-9][0-9]*)", text):
            return int(text)
        return self.construct_scalar(node)

    def construct_checked_timestamp(self, node):
        try:
            return self.construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)  # e.g. 2026-02-30; the date check refuses it with its path

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int)):
                continue  # not a key of this format; the schema refuses it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


ExactLoader.add_constructor("tag:yaml.org,2002:float", ExactLoader.construct_exact_decimal)
ExactLoader.add_constructor("tag:yaml.org,2002:int", ExactLoader.construct_plain_int)
ExactLoader.add_constructor("tag:yaml.org,2002:timestamp", ExactLoader.construct_checked_timestamp)


def read_yaml(text: str, *, source: str):
    try:
        return yaml.load(text, Loader=ExactLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "not valid YAML"
        raise invalid(source, [(where, f"YAML syntax error: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise invalid(source, [("", f"YAML syntax error: {exc}")]) from None


# --- value types -----------------------------------------------------------------------------


def _exact(value) -> Decimal:
    try:
        number = to_decimal(value)
    except ValidationFailed as exc:
        raise ValueError(exc.message) from None
    if number != 0 and number.normalize(EXACT).as_tuple().exponent < -MAX_DECIMALS:
        raise ValueError(f"{number} has more than {MAX_DECIMALS} decimals")
    return number


def _not_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError(f"{value} is negative; prices and amounts must be zero or more")
    return value


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError(f"{value} must be greater than zero")
    return value


def _unit(code: str) -> str:
    try:
        return get_unit(code).code
    except ValidationFailed as exc:
        raise ValueError(exc.message) from None


def _currency(code: str) -> str:
    code = _unit(code)
    if not get_unit(code).is_money:
        raise ValueError(f"{code!r} is not a currency")
    return code


Amount = Annotated[Decimal, BeforeValidator(_exact), AfterValidator(_not_negative)]
PositiveAmount = Annotated[Decimal, BeforeValidator(_exact), AfterValidator(_positive)]
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$", min_length=1, max_length=60)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
TaxCategory = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$", min_length=1, max_length=40)]
UnitCode = Annotated[str, AfterValidator(_unit)]
CurrencyCode = Annotated[str, AfterValidator(_currency)]
Period = Literal["week", "month", "quarter", "year"]
Billing = Literal["advance", "arrears"]
CHARGE_TYPES = ("recurring", "one_time", "quantity", "usage")


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServiceSpec(Spec):
    code: Code
    name: Name
    kind: Literal["voice", "sms", "data", "video", "event"]
    unit: UnitCode


class ProductSpec(Spec):
    code: Code
    name: Name
    description: str = ""
    tax_category: TaxCategory = "standard"
    revenue_account: str = Field(default="", max_length=20)


class TierSpec(Spec):
    up_to: PositiveAmount | None = None
    unit_price: Amount
    flat_fee: Amount = Decimal(0)


class _ChargeSpec(Spec):
    code: Code
    name: Name | None = None  # default: made from the code
    product: Code | None = None
    tax_category: TaxCategory | None = None  # default: the product's, else "standard"


class RecurringChargeSpec(_ChargeSpec):
    type: Literal["recurring"]
    price: Amount
    period: Period = "month"
    billing: Billing = "advance"
    prorate: bool = False


class OneTimeChargeSpec(_ChargeSpec):
    type: Literal["one_time"]
    price: Amount
    event: Literal["activation", "termination"] = "activation"


class QuantityChargeSpec(_ChargeSpec):
    type: Literal["quantity"]
    model: Literal["per_unit", "graduated", "volume", "package"]
    price: Amount | None = None
    package_size: PositiveAmount | None = None
    tiers: list[TierSpec] | None = None
    period: Period = "month"
    billing: Billing = "advance"
    prorate: bool = False


class UsageChargeSpec(_ChargeSpec):
    type: Literal["usage"]
    service: Code
    rate_table: Code  # a rate table's code; rate tables are defined elsewhere


ChargeSpec = Annotated[
    RecurringChargeSpec | OneTimeChargeSpec | QuantityChargeSpec | UsageChargeSpec,
    Field(discriminator="type"),
]


class AllowanceSpec(Spec):
    service: Code
    amount: PositiveAmount
    unit: UnitCode
    period: Period = "month"
    prorate: bool = False
    rollover_cap: Amount | None = None  # in `unit`; None: nothing rolls over


class PlanSpec(Spec):
    code: Code
    name: Name
    description: str = ""
    currency: CurrencyCode | None = None  # default: the document's, else the tenant's
    reseller: Code | None = None
    active: bool = True
    bill_during_suspension: bool = False
    charges: list[ChargeSpec] = []
    allowances: list[AllowanceSpec] = []


class CatalogSpec(Spec):
    catalog: int
    effective_from: date | None = None
    currency: CurrencyCode | None = None
    services: list[ServiceSpec] = []
    products: list[ProductSpec] = []
    plans: list[PlanSpec] = []

    @field_validator("catalog", mode="before")
    @classmethod
    def _known_version(cls, value):
        if type(value) is not int or value != FORMAT_VERSION:
            raise ValueError(
                f"unsupported format version {value!r}: this Obol reads 'catalog: {FORMAT_VERSION}'")
        return value


# --- checks pydantic cannot express ----------------------------------------------------------


def tier_problems(tiers: list[TierSpec]) -> list[Problem]:
    """Tiers must be given in order of strictly increasing `up_to`, and only the last is open (null)."""
    if not tiers:
        return [("", "needs at least one tier")]
    problems = []
    previous = None
    for index, tier in enumerate(tiers):
        last = index == len(tiers) - 1
        where = f"[{index}].up_to"
        if tier.up_to is None and not last:
            problems.append((where, "only the last tier may be open-ended (up_to: null)"))
        elif tier.up_to is not None and last:
            problems.append((where, f"the last tier must be open-ended (up_to: null), not {tier.up_to}"))
        elif tier.up_to is not None and previous is not None and tier.up_to <= previous:
            problems.append((where, f"{tier.up_to} must be greater than the previous tier's {previous}"))
        if tier.up_to is not None:
            previous = tier.up_to
    return problems


def _quantity_problems(charge: QuantityChargeSpec) -> list[Problem]:
    tiered = charge.model in ("graduated", "volume")
    problems = []
    if tiered:
        if charge.price is not None:
            problems.append(("price", f"a {charge.model} charge is priced by its tiers, not by price"))
        if charge.tiers is None:
            problems.append(("tiers", f"a {charge.model} charge needs tiers"))
        else:
            problems += [(join_path("tiers", p), r) for p, r in tier_problems(charge.tiers)]
    else:
        if charge.price is None:
            problems.append(("price", f"a {charge.model} charge needs a price"))
        if charge.tiers is not None:
            problems.append(("tiers", f"a {charge.model} charge has no tiers (use price)"))
    if charge.model == "package" and charge.package_size is None:
        problems.append(("package_size", "a package charge needs a package_size"))
    if charge.model != "package" and charge.package_size is not None:
        problems.append(("package_size", f"only a package charge has a package_size, not {charge.model}"))
    return problems


def _duplicates(items, what: str, prefix: str) -> list[Problem]:
    first: dict[str, int] = {}
    problems = []
    for index, item in enumerate(items):
        if item.code in first:
            problems.append((f"{prefix}[{index}].code",
                             f"duplicate {what} code {item.code!r} (also {prefix}[{first[item.code]}])"))
        first.setdefault(item.code, index)
    return problems


def plan_problems(plan: PlanSpec) -> list[Problem]:
    problems = _duplicates(plan.charges, "charge", "charges")
    for index, charge in enumerate(plan.charges):
        if isinstance(charge, QuantityChargeSpec):
            problems += [(join_path(f"charges[{index}]", p), r) for p, r in _quantity_problems(charge)]
    return problems


def document_problems(spec: CatalogSpec) -> list[Problem]:
    problems = _duplicates(spec.services, "service", "services")
    problems += _duplicates(spec.products, "product", "products")
    problems += _duplicates(spec.plans, "plan", "plans")
    for index, plan in enumerate(spec.plans):
        problems += [(join_path(f"plans[{index}]", p), r) for p, r in plan_problems(plan)]
    return problems


# --- entry points ----------------------------------------------------------------------------


def _path(loc: tuple) -> str:
    """pydantic's loc as a document path; the charge type pydantic adds after `charges[i]` is dropped."""
    path = ""
    for position, item in enumerate(loc):
        if isinstance(item, int):
            path += f"[{item}]"
        elif position >= 2 and loc[position - 2] == "charges" and isinstance(loc[position - 1], int) \
                and item in CHARGE_TYPES:
            continue
        else:
            path = join_path(path, str(item))
    return path


def _reason(error: dict) -> str:
    kind, value = error["type"], error.get("input")
    if kind == "missing":
        return "missing (required)"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "union_tag_not_found":
        return f"missing; one of {', '.join(CHARGE_TYPES)}"
    if kind == "union_tag_invalid":
        return f"unknown charge type {value.get('type')!r}; one of {', '.join(CHARGE_TYPES)}"
    if kind == "value_error":
        return error["msg"].removeprefix("Value error, ")
    message = error["msg"]
    if isinstance(value, (str, int, float, Decimal, bool)) or value is None:
        message += f" (got {value!r})"
    return message


def _problems(exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors():
        path = _path(error["loc"])
        if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
            path = join_path(path, "type")
        problems.append((path, _reason(error)))
    return problems


def _document(document, source: str, what: str) -> dict:
    data = read_yaml(document, source=source) if isinstance(document, str) else document
    if data is None:
        raise invalid(source, [("", f"empty document: expected {what}")])
    if not isinstance(data, dict):
        raise invalid(source, [("", f"expected {what}, found {type(data).__name__}")])
    return data


def parse_catalog(document: dict | str, *, source: str) -> CatalogSpec:
    """A catalog document (YAML text or dict) as checked models, or ValidationFailed naming every problem."""
    data = _document(document, source, f"a mapping that starts with 'catalog: {FORMAT_VERSION}'")
    try:
        spec = CatalogSpec.model_validate(data)
    except ValidationError as exc:
        raise invalid(source, _problems(exc)) from None
    problems = document_problems(spec)
    if problems:
        raise invalid(source, problems)
    return spec


def parse_plan(document: dict | str, *, source: str) -> PlanSpec:
    """One plan (the schema of one entry of `plans:`), paths relative to the plan."""
    data = _document(document, source, "a plan mapping")
    try:
        spec = PlanSpec.model_validate(data)
    except ValidationError as exc:
        raise invalid(source, _problems(exc)) from None
    problems = plan_problems(spec)
    if problems:
        raise invalid(source, problems)
    return spec
