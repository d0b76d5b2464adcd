"""REST routes for customers and billing accounts."""

from decimal import Decimal
from typing import Annotated
from typing import Literal

from django.db import transaction
from ninja import Field, FilterLookup, FilterSchema, Query, Router, Schema
from ninja.pagination import LimitOffsetPagination, paginate

from obol.api.idempotency import idempotent
from obol.api.schemas import ERRORS
from obol.balances.referrals import register_signup
from obol.core.errors import NotFound
from obol.customers import services
from obol.customers.models import BillingAccount, Contact, Customer, Reseller

router = Router(tags=["customers"])


class ContactIn(Schema):
    role: Literal["primary", "billing", "technical"] = "primary"
    name: str
    email: str = ""
    phone: str = ""


class ContactOut(ContactIn):
    id: int


class AddressIn(Schema):
    kind: Literal["billing", "service", "legal"] = "billing"
    line1: str
    line2: str = ""
    postal_code: str = ""
    city: str
    region: str = ""
    country: str = Field(..., min_length=2, max_length=2)


class AddressOut(AddressIn):
    id: int


class CustomerPatch(Schema):
    kind: Literal["person", "company"] | None = None
    name: str | None = Field(None, min_length=1, max_length=200)
    legal_name: str | None = None
    email: str | None = None
    phone: str | None = None
    country: str | None = Field(None, max_length=2)
    tax_id: str | None = None
    language: str | None = None
    reseller: str | None = Field(None, description="Reseller code")
    external_ref: str | None = None


class CustomerIn(CustomerPatch):
    number: str | None = Field(None, description="Leave empty to number automatically")
    kind: Literal["person", "company"] = "person"
    name: str = Field(..., min_length=1, max_length=200)
    contacts: list[ContactIn] = []
    addresses: list[AddressIn] = []
    referral_code: str | None = Field(None, description="A referral code the customer signed up with")


class CustomerOut(Schema):
    id: int
    number: str
    kind: str
    name: str
    legal_name: str
    email: str
    phone: str
    country: str
    tax_id: str
    language: str
    reseller: str | None = Field(None, alias="reseller.code")
    external_ref: str
    contacts: list[ContactOut] = Field(..., alias="contacts.all")
    addresses: list[AddressOut] = Field(..., alias="addresses.all")


class CustomerFilter(FilterSchema):
    q: Annotated[str | None, FilterLookup(["name__icontains", "number__icontains", "email__icontains"])] = Field(None, description="Search in name, number and e-mail")
    kind: Literal["person", "company"] | None = None
    country: str | None = None
    reseller: Annotated[str | None, FilterLookup("reseller__code")] = None


def _reseller(code: str | None, field: str = "reseller") -> Reseller | None:
    if not code:
        return None
    reseller = Reseller.objects.filter(code=code).first()
    if reseller is None:
        raise NotFound(f"{field}: no reseller {code!r}", field=field)
    return reseller


def _customer_fields(data: dict) -> dict:
    if "reseller" in data:
        data["reseller"] = _reseller(data["reseller"])
    return data


@router.get("/customers", response=list[CustomerOut], summary="List customers")
@paginate(LimitOffsetPagination)
def list_customers(request, filters: Query[CustomerFilter]):
    return filters.filter(Customer.objects.select_related("reseller").prefetch_related("contacts", "addresses"))


@router.post("/customers", response={201: CustomerOut, **ERRORS}, summary="Create a customer")
@idempotent(CustomerOut)
def create_customer(request, payload: CustomerIn):
    data = _customer_fields(payload.dict(exclude_unset=True))
    data["contacts"] = [c.dict() for c in payload.contacts]
    data["addresses"] = [a.dict() for a in payload.addresses]
    referral_code = data.pop("referral_code", None)
    with transaction.atomic():  # a refused referral code creates no customer
        customer = services.create_customer(request.actor, **data)
        if referral_code:
            register_signup(request.actor, customer, referral_code)
    return customer


@router.get("/customers/{customer_id}", response={200: CustomerOut, **ERRORS}, summary="Get a customer")
def get_customer(request, customer_id: int):
    return Customer.objects.get_or_404(pk=customer_id)


@router.patch("/customers/{customer_id}", response={200: CustomerOut, **ERRORS}, summary="Update a customer")
def update_customer(request, customer_id: int, payload: CustomerPatch):
    customer = Customer.objects.get_or_404(pk=customer_id)
    return services.update_customer(request.actor, customer, **_customer_fields(payload.dict(exclude_unset=True)))


@router.post("/customers/{customer_id}/contacts", response={201: ContactOut, **ERRORS}, summary="Add a contact")
@idempotent(ContactOut)
def add_contact(request, customer_id: int, payload: ContactIn):
    return services.add_contact(request.actor, Customer.objects.get_or_404(pk=customer_id), **payload.dict())


@router.post("/customers/{customer_id}/addresses", response={201: AddressOut, **ERRORS}, summary="Add an address")
@idempotent(AddressOut)
def add_address(request, customer_id: int, payload: AddressIn):
    return services.add_address(request.actor, Customer.objects.get_or_404(pk=customer_id), **payload.dict())


class AccountPatch(Schema):
    name: str | None = None
    bill_cycle_day: int | None = Field(None, ge=1, le=31)
    bill_period: Literal["week", "month", "quarter", "year"] | None = None
    bill_cycle_month: int | None = Field(None, ge=1, le=12, description="Quarterly, yearly: the month a period starts in")
    bill_weekday: int | None = Field(None, ge=0, le=6, description="Weekly: 0 (Monday) to 6 (Sunday)")
    segment: str | None = Field(None, max_length=40)
    itemised_usage: bool | None = Field(None, description="Invoices list every rated call of their usage lines")
    payment_terms_days: int | None = Field(None, ge=0, le=365)
    mode: Literal["prepaid", "postpaid", "hybrid"] | None = None
    credit_limit: Decimal | None = Field(None, description="Decimal string, in the account's currency")
    language: str | None = None
    reseller: str | None = Field(None, description="Reseller code")
    omit_from_dunning: bool | None = None
    parent_id: int | None = None
    billing_contact_id: int | None = None
    status: Literal["active", "closed"] | None = None


class AccountIn(AccountPatch):
    customer_id: int
    number: str | None = Field(None, description="Leave empty to number automatically")
    currency: str | None = Field(None, description="ISO 4217 or crypto code; default: the tenant's")


class AccountOut(Schema):
    id: int
    number: str
    customer_id: int
    name: str
    currency: str
    bill_cycle_day: int
    bill_period: str
    bill_cycle_month: int
    bill_weekday: int
    segment: str
    itemised_usage: bool
    payment_terms_days: int
    mode: str
    credit_limit: Decimal | None
    language: str
    reseller: str | None = Field(None, alias="reseller.code")
    omit_from_dunning: bool
    parent_id: int | None
    billing_contact_id: int | None
    status: str


class AccountFilter(FilterSchema):
    customer_id: int | None = None
    mode: Literal["prepaid", "postpaid", "hybrid"] | None = None
    currency: str | None = None
    bill_cycle_day: int | None = None
    bill_period: Literal["week", "month", "quarter", "year"] | None = None
    segment: str | None = None
    reseller: Annotated[str | None, FilterLookup("reseller__code")] = None
    omit_from_dunning: bool | None = None
    q: Annotated[str | None, FilterLookup(["number__icontains", "name__icontains", "customer__name__icontains"])] = None


def _account_fields(data: dict) -> dict:
    if "reseller" in data:
        data["reseller"] = _reseller(data["reseller"])
    if "parent_id" in data:
        parent_id = data.pop("parent_id")
        data["parent"] = BillingAccount.objects.get_or_404("parent account", pk=parent_id) if parent_id else None
    if "billing_contact_id" in data:
        contact_id = data.pop("billing_contact_id")
        data["billing_contact"] = Contact.objects.get_or_404("contact", pk=contact_id) if contact_id else None
    if data.get("currency") is None:
        data.pop("currency", None)
    return data


@router.get("/accounts", response=list[AccountOut], summary="List billing accounts")
@paginate(LimitOffsetPagination)
def list_accounts(request, filters: Query[AccountFilter]):
    return filters.filter(BillingAccount.objects.select_related("reseller"))


@router.post("/accounts", response={201: AccountOut, **ERRORS}, summary="Open a billing account")
@idempotent(AccountOut)
def create_account(request, payload: AccountIn):
    data = payload.dict(exclude_unset=True)
    customer = Customer.objects.get_or_404("customer", pk=data.pop("customer_id"))
    return services.open_account(request.actor, customer, **_account_fields(data))


@router.get("/accounts/{account_id}", response={200: AccountOut, **ERRORS}, summary="Get a billing account")
def get_account(request, account_id: int):
    return BillingAccount.objects.get_or_404(pk=account_id)


@router.patch("/accounts/{account_id}", response={200: AccountOut, **ERRORS}, summary="Update a billing account")
def update_account(request, account_id: int, payload: AccountPatch):
    account = BillingAccount.objects.get_or_404(pk=account_id)
    return services.update_account(request.actor, account, **_account_fields(payload.dict(exclude_unset=True)))


