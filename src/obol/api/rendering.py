"""JSON out of the API: decimals as plain fixed-point strings ("0.0000001", never "1E-7")."""
from __future__ import annotations

import json
from decimal import Decimal

from django.http import HttpResponse
from ninja.renderers import JSONRenderer
from ninja.responses import NinjaJSONEncoder


def decimal_text(value: Decimal) -> str:
    return format(value, "f")


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
