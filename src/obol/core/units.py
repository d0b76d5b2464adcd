"""Units that amounts are counted in: ISO 4217 currencies, crypto currencies and non-money units.

A unit knows its kind, how many decimals it is rounded to at the named rounding places (a
currency's minor unit, from ISO 4217), and, for measurable units, its size in the base unit of
its dimension (second for time, byte for data) so that conversion is explicit and exact.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from obol.core.errors import ValidationFailed


@dataclass(frozen=True, slots=True)
class Unit:
    code: str
    kind: str  # currency | crypto | time | data | event | item | points
    decimals: int
    name: str
    dimension: str | None = None  # units of one dimension convert into each other
    base_factor: Decimal = Decimal(1)  # size in the dimension's base unit

    @property
    def is_money(self) -> bool:
        return self.kind in ("currency", "crypto")

    def __str__(self) -> str:
        return self.code


# ISO 4217 active codes and their minor units. Most have 2; the exceptions are listed below.
_ISO4217_CODES = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN
BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP
GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF
KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR
MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK
SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU
UYW UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
""".split()
_ISO4217_MINOR_EXCEPTIONS = {
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0
    ),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}

_CRYPTO = [("BTC", 8, "Bitcoin"), ("ETH", 18, "Ether"), ("LTC", 8, "Litecoin"),
           ("USDT", 6, "Tether USD"), ("USDC", 6, "USD Coin")]

# Data units are binary (1 kilobyte = 1024 bytes), as operators count volume.
_OTHER = [
    Unit("second", "time", 0, "second", "time", Decimal(1)),
    Unit("minute", "time", 6, "minute", "time", Decimal(60)),
    Unit("hour", "time", 6, "hour", "time", Decimal(3600)),
    Unit("byte", "data", 0, "byte", "data", Decimal(1)),
    Unit("kilobyte", "data", 6, "kilobyte (1024 bytes)", "data", Decimal(1024)),
    Unit("megabyte", "data", 6, "megabyte (1024² bytes)", "data", Decimal(1024**2)),
    Unit("gigabyte", "data", 6, "gigabyte (1024³ bytes)", "data", Decimal(1024**3)),
    Unit("sms", "event", 0, "SMS"),
    Unit("mms", "event", 0, "MMS"),
    Unit("event", "event", 0, "event"),
    Unit("play", "event", 0, "video play"),
    Unit("point", "points", 0, "loyalty point"),
    Unit("package", "item", 0, "service package"),
]

UNITS: dict[str, Unit] = {}
for _code in _ISO4217_CODES:
    UNITS[_code] = Unit(_code, "currency", _ISO4217_MINOR_EXCEPTIONS.get(_code, 2), _code)
for _code, _decimals, _name in _CRYPTO:
    UNITS[_code] = Unit(_code, "crypto", _decimals, _name)
for _unit in _OTHER:
    UNITS[_unit.code] = _unit

MAX_DECIMALS = 18  # what the exact field stores; ETH needs all of them


def get_unit(code: str | Unit) -> Unit:
    """The unit for a code; currency and crypto codes are case-insensitive ('eur' is EUR)."""
    if isinstance(code, Unit):
        return code
    unit = UNITS.get(code) or UNITS.get(str(code).upper()) or UNITS.get(str(code).lower())
    if unit is None:
        raise ValidationFailed(f"unknown unit {code!r}", code="unknown_unit")
    return unit


def base_unit(unit: Unit | str) -> Unit:
    """The unit a dimension counts in exactly (second for time, byte for data); the unit itself
    when it has no dimension."""
    unit = get_unit(unit)
    if unit.dimension is None:
        return unit
    return next(u for u in UNITS.values() if u.dimension == unit.dimension and u.base_factor == 1)


def currency_codes() -> list[str]:
    return [u.code for u in UNITS.values() if u.is_money]


def unit_choices() -> list[tuple[str, str]]:
    return [(u.code, u.name if u.name != u.code else u.code) for u in UNITS.values()]
