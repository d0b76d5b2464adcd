"""The catalog file format: exact decimals, and errors that name the file, the path and the reason.
These tests parse only; nothing here touches the database."""
from decimal import Decimal

import pytest

from obol.catalog.loader import parse_catalog, parse_plan
from obol.core.errors import ValidationFailed


def catalog(plans_yaml: str, head: str = "catalog: 1\ncurrency: EUR\n") -> str:
    return head + "plans:\n" + plans_yaml


def error_of(text: str, source: str = "test.yaml") -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        parse_catalog(text, source=source)
    assert caught.value.code == "invalid_catalog"
    return caught.value


ONE_FEE = """\
  - code: p
    name: P
    charges:
      - {{type: recurring, code: fee, price: {price}}}
"""


def test_a_price_that_looks_like_a_float_is_read_exactly():
    spec = parse_catalog(catalog(ONE_FEE.format(price="0.1")), source="t.yaml")
    price = spec.plans[0].charges[0].price
    assert isinstance(price, Decimal) and price == Decimal("0.1")
    assert str(price) == "0.1"  # not 0.1000000000000000055511151231257827


@pytest.mark.parametrize(("written", "expected"), [
    ("9.99", "9.99"), ('"9.99"', "9.99"), ("10", "10"), ("0.000000000000000001", "1E-18"),
    ("1_000.50", "1000.50"),
])
def test_prices_in_every_exact_form(written, expected):
    spec = parse_catalog(catalog(ONE_FEE.format(price=written)), source="t.yaml")
    assert spec.plans[0].charges[0].price == Decimal(expected)


@pytest.mark.parametrize(("written", "reason"), [
    ('"9,99"', "'9,99' is not a decimal number"),
    ("-1.00", "-1.00 is negative; prices and amounts must be zero or more"),
    (".inf", "is not a finite number"),
    ("0.0000000000000000001", "has more than 18 decimals"),
    ("true", "True is not an amount"),
])
def test_a_bad_price_is_named_with_its_path_and_reason(written, reason):
    error = error_of(catalog(ONE_FEE.format(price=written)), source="prices.yaml")
    assert error.field == "plans[0].charges[0].price"
    assert error.message.startswith("prices.yaml: plans[0].charges[0].price: ")
    assert reason in error.message


def test_a_float_handed_in_from_python_is_refused():
    with pytest.raises(ValidationFailed, match=r"api: charges\[0\].price: 9.99 is a float"):
        parse_plan({"code": "p", "name": "P",
                    "charges": [{"type": "recurring", "code": "fee", "price": 9.99}]}, source="api")


def test_the_broken_sample_names_file_path_and_reason(repo_root):
    path = "samples/catalog-broken-price.yaml"
    error = error_of((repo_root / path).read_text(), source=path)
    assert str(error) == f"{path}: plans[0].charges[0].price: '9,99' is not a decimal number"


def test_yaml_syntax_error_gives_the_line():
    text = "catalog: 1\nplans:\n  - code: p\n    name: [unclosed\n"
    error = error_of(text, source="syntax.yaml")
    assert error.message.startswith("syntax.yaml: line 5, column 1: YAML syntax error:")


def test_a_duplicated_key_is_refused_rather_than_silently_overwritten():
    text = catalog("  - code: p\n    name: P\n    charges:\n      - type: recurring\n        code: fee\n"
                   "        price: 9.99\n        price: 19.99\n")
    error = error_of(text)
    assert "line 10" in error.message and "duplicate key 'price'" in error.message


@pytest.mark.parametrize(("plan_yaml", "path", "reason"), [
    ("  - {code: p, name: P, pirce: 1}\n", "plans[0].pirce", "unknown key"),
    ("  - {code: p}\n", "plans[0].name", "missing (required)"),
    ("  - {code: p, name: P, charges: [{type: subscription, code: f, price: 1}]}\n",
     "plans[0].charges[0].type", "unknown charge type 'subscription'"),
    ("  - {code: p, name: P, charges: [{code: f, price: 1}]}\n", "plans[0].charges[0].type", "missing"),
    ("  - {code: p, name: P, charges: [{type: recurring, code: f, price: 1, period: monthly}]}\n",
     "plans[0].charges[0].period", "(got 'monthly')"),
    ("  - {code: p, name: P, currency: XYZ}\n", "plans[0].currency", "unknown unit 'XYZ'"),
    ("  - {code: p, name: P, currency: minute}\n", "plans[0].currency", "'minute' is not a currency"),
    ("  - {code: p, name: P, allowances: [{service: voice, amount: 300, unit: minutes}]}\n",
     "plans[0].allowances[0].unit", "unknown unit 'minutes'"),
    ("  - {code: p, name: P, allowances: [{service: voice, amount: 0, unit: minute}]}\n",
     "plans[0].allowances[0].amount", "must be greater than zero"),
    ("  - {code: 'mobile s', name: P}\n", "plans[0].code", "should match pattern"),
    ("  - {code: p, name: P}\n  - {code: p, name: Q}\n", "plans[1].code",
     "duplicate plan code 'p' (also plans[0])"),
    (("  - {code: p, name: P, charges: [{type: usage, code: v, service: voice, rate_table: r}, "
      "{type: usage, code: v, service: sms, rate_table: s}]}\n"), "plans[0].charges[1].code",
     "duplicate charge code"),
    ("  - {code: p, name: P, charges: [{type: quantity, code: ip, model: per_unit}]}\n",
     "plans[0].charges[0].price", "a per_unit charge needs a price"),
    ("  - {code: p, name: P, charges: [{type: quantity, code: sms, model: package, price: 5}]}\n",
     "plans[0].charges[0].package_size", "a package charge needs a package_size"),
    ("  - {code: p, name: P, charges: [{type: quantity, code: s, model: graduated}]}\n",
     "plans[0].charges[0].tiers", "a graduated charge needs tiers"),
    (("  - {code: p, name: P, charges: [{type: quantity, code: s, model: volume, price: 1, "
      "tiers: [{unit_price: 1}]}]}\n"), "plans[0].charges[0].price", "priced by its tiers"),
])
def test_each_problem_names_its_path(plan_yaml, path, reason):
    error = error_of(catalog(plan_yaml))
    assert error.field == path
    assert error.message.startswith(f"test.yaml: {path}: ")
    assert reason in error.message.splitlines()[0]


def test_every_problem_of_a_file_is_reported_at_once():
    text = catalog("  - {code: a, name: A, charges: [{type: recurring, code: f, price: '1,5'}]}\n"
                   "  - {code: b, name: B, charges: [{type: one_time, code: f, price: -3}]}\n")
    lines = error_of(text).message.splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "plans[0].charges[0].price", "plans[1].charges[0].price"]


@pytest.mark.parametrize(("head", "reason"), [
    ("currency: EUR\n", "catalog: missing (required)"),
    ("catalog: 2\n", "catalog: unsupported format version 2"),
    ("catalog: 1\neffective_from: 2026-02-30\n", "effective_from: Input should be a valid date"),
    ("catalog: 1\neffective_from: 1 March\n", "effective_from: Input should be a valid date"),
])
def test_the_header_is_checked(head, reason):
    assert reason in error_of(head + "plans: []\n").message


@pytest.mark.parametrize("text", ["", "- just\n- a list\n"])
def test_a_document_that_is_not_a_catalog_is_refused(text):
    assert "expected a mapping that starts with 'catalog: 1'" in error_of(text).message


TIERS = """\
  - code: p
    name: P
    charges:
      - type: quantity
        code: seats
        model: {model}
        tiers: {tiers}
"""


@pytest.mark.parametrize(("tiers", "path", "reason"), [
    # valid: strictly increasing, last open-ended
    ("[{up_to: 10, unit_price: 12}, {up_to: 50, unit_price: 10}, {up_to: null, unit_price: 8}]", None, None),
    ("[{up_to: null, unit_price: 8}]", None, None),
    ("[{unit_price: 8, flat_fee: 2.50}]", None, None),
    # invalid
    ("[]", "tiers", "needs at least one tier"),
    ("[{up_to: 10, unit_price: 12}]", "tiers[0].up_to",
     "the last tier must be open-ended (up_to: null), not 10"),
    ("[{up_to: 10, unit_price: 12}, {up_to: 10, unit_price: 10}, {up_to: null, unit_price: 8}]",
     "tiers[1].up_to", "10 must be greater than the previous tier's 10"),
    ("[{up_to: 50, unit_price: 12}, {up_to: 10, unit_price: 10}, {up_to: null, unit_price: 8}]",
     "tiers[1].up_to", "10 must be greater than the previous tier's 50"),
    ("[{up_to: null, unit_price: 12}, {up_to: null, unit_price: 10}]",
     "tiers[0].up_to", "only the last tier may be open-ended"),
    ("[{up_to: 0, unit_price: 12}, {up_to: null, unit_price: 10}]", "tiers[0].up_to",
     "0 must be greater than zero"),
    ("[{up_to: 10, unit_price: -1}, {up_to: null, unit_price: 10}]", "tiers[0].unit_price", "-1 is negative"),
    ("[{up_to: 10, unit_price: 1, flat_fee: -5}, {up_to: null, unit_price: 1}]", "tiers[0].flat_fee",
     "-5 is negative"),
    ("[{up_to: 10, unit_price: 1, price: 1}, {up_to: null, unit_price: 1}]", "tiers[0].price", "unknown key"),
])
@pytest.mark.parametrize("model", ["graduated", "volume"])
def test_tier_rules(model, tiers, path, reason):
    text = catalog(TIERS.format(model=model, tiers=tiers))
    if path is None:
        spec = parse_catalog(text, source="tiers.yaml")
        assert spec.plans[0].charges[0].tiers[-1].up_to is None
        return
    error = error_of(text, source="tiers.yaml")
    assert error.field == f"plans[0].charges[0].{path}"
    assert reason in error.message.splitlines()[0]


def test_defaults_are_filled_in():
    spec = parse_catalog(catalog(
        "  - code: p\n    name: P\n    charges:\n"
        "      - {type: recurring, code: fee, price: 1}\n"
        "      - {type: one_time, code: setup, price: 1}\n"
        "      - {type: quantity, code: ip, model: per_unit, price: 1}\n"
        "    allowances:\n      - {service: sms, amount: 10, unit: sms}\n"), source="t.yaml")
    fee, setup, ip = spec.plans[0].charges
    assert (fee.period, fee.billing, fee.prorate) == ("month", "advance", False)
    assert setup.event == "activation"
    assert (ip.period, ip.billing) == ("month", "advance")
    assert (spec.plans[0].allowances[0].period, spec.plans[0].allowances[0].prorate) == ("month", False)
    assert spec.plans[0].active is True and spec.plans[0].bill_during_suspension is False


@pytest.mark.parametrize("literal", ["0x10", "1:30", "0o7"])
def test_integers_in_other_notations_are_refused_not_misread(literal):
    document = f"""
catalog: 1
plans:
  - code: p
    name: P
    currency: EUR
    charges:
      - {{type: recurring, code: fee, price: {literal}}}
"""
    with pytest.raises(ValidationFailed) as err:
        parse_catalog(document, source="odd.yaml")
    assert err.value.field == "plans[0].charges[0].price"
    assert literal in err.value.message


def test_a_leading_zero_is_decimal_not_octal():
    spec = parse_plan({"code": "p", "name": "P", "currency": "EUR",
                       "charges": [{"type": "recurring", "code": "fee", "price": "010"}]}, source="api")
    assert spec.charges[0].price == Decimal(10)
    document = "catalog: 1\nplans:\n  - {code: p, name: P, currency: EUR, charges: [{type: recurring, code: f, price: 010}]}\n"
    assert parse_catalog(document, source="x.yaml").plans[0].charges[0].price == Decimal(10)
