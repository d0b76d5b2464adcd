"""JSON out of the API: decimals as canonical fixed-point strings: no exponent ("0.0000001", never
"1E-7") and no trailing zeros ("10", not "10.00"), so an amount reads the same whichever database
stored it (SQLite keeps no scale, PostgreSQL does)."""
from __future__ import annotations

import json
from decimal import Decimal

from django.http import HttpResponse
from ninja.renderers import JSONRenderer
from ninja.responses import NinjaJSONEncoder

from obol.core.fields import canonical_text


def decimal_text(value: Decimal) -> str:
    return canonical_text(value)


class ObolJSONEncoder(NinjaJSONEncoder):
    def default(self, o):
        if isinstance(o, Decimal):
            return decimal_text(o)
        return super().default(o)


class ObolJSONRenderer(JSONRenderer):
    encoder_class = ObolJSONEncoder


def json_response(data, status: int) -> HttpResponse:
    return HttpResponse(json.dumps(data, cls=ObolJSONEncoder), status=status, content_type="application/json")


def as_json_data(data):
    """`data` as it will be sent (plain JSON types, decimals as fixed-point strings)."""
    return json.loads(json.dumps(data, cls=ObolJSONEncoder))
