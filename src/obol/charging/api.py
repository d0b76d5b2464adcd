"""HTTP routes of real-time charging: one thin layer over `charging.service` (a Diameter front end
would call the same functions). Every answer is `ChargingAnswer` with a stable `code`; its HTTP
status follows the code (`service.CODES`): 200/201 granted or committed, 402 no credit, 403
suspended or closed, 404 unknown subscriber or session, 409 finished session, 422 no tariff."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from ninja import Field, Router, Schema

from obol.api.rendering import json_response
from obol.api.schemas import ERRORS
from obol.charging import service
from obol.charging.models import ChargingSession
from obol.core.errors import NotFound

router = Router(tags=["charging"])


class ChargingAnswer(Schema):
    code: str = Field(..., description="ok, or why not: " + ", ".join(c for c in service.CODES if c != "ok"))
    message: str
    session_id: str | None = None
    granted: int = Field(0, description="Units granted (seconds, bytes, events) until valid_until")
    valid_until: datetime | None = None
    used: int = Field(0, description="Units used in the session so far")
    charged: str | None = Field(None, description="Money committed (terminate, events)")
    currency: str | None = None


ANSWERS = {status: ChargingAnswer for status in set(service.CODES.values()) | {201}} | {
    k: v for k, v in ERRORS.items() if k not in service.CODES.values()}


class StartIn(Schema):
    request_id: str = Field(..., max_length=200, description="Unique per request: a repeat gets the first answer")
    subscriber: str = Field(..., max_length=100, description="The usage identifier, e.g. an MSISDN")
    identifier_kind: str = "msisdn"
    service: str = Field(..., description="voice, sms, mms, data or event")
    destination: str = Field("", max_length=40)
    requested: int = Field(..., ge=0, description="Units asked for (seconds, bytes, events)")
    at: datetime | None = Field(None, description="When the usage starts (default now)")


class UpdateIn(Schema):
    request_id: str = Field(..., max_length=200)
    used: int = Field(..., ge=0, description="Units used since the last report")
    requested: int = Field(..., ge=0)


class TerminateIn(Schema):
    request_id: str = Field(..., max_length=200)
    used: int = Field(..., ge=0, description="Units used since the last report")


class EventIn(Schema):
    request_id: str = Field(..., max_length=200)
    subscriber: str = Field(..., max_length=100)
    identifier_kind: str = "msisdn"
    service: str
    destination: str = Field("", max_length=40)
    quantity: int = Field(1, ge=1)
    at: datetime | None = None


def _answer(answer: service.Answer, created: bool = False):
    status = 201 if created and answer.code == "ok" else answer.status
    return json_response(answer.as_json(), status)


@router.post("/charging/sessions", response=ANSWERS, summary="Open a charging session and get a first grant")
def start_session(request, body: StartIn):
    return _answer(service.start(request.actor, **body.dict()), created=True)


@router.post("/charging/sessions/{session_id}/update", response=ANSWERS,
             summary="Report units used and ask for more")
def update_session(request, session_id: str, body: UpdateIn):
    return _answer(service.update(request.actor, session_id, **body.dict()))


@router.post("/charging/sessions/{session_id}/terminate", response=ANSWERS,
             summary="Report the last units used: commit the session and release the rest")
def terminate_session(request, session_id: str, body: TerminateIn):
    return _answer(service.terminate(request.actor, session_id, **body.dict()))


@router.post("/charging/events", response=ANSWERS, summary="Charge a one-shot event (an SMS, a purchase) at once")
def charge_event(request, body: EventIn):
    return _answer(service.charge_event(request.actor, **body.dict()))


class SessionOut(Schema):
    session_id: UUID = Field(..., alias="key")
    state: str
    identifier: str
    service_kind: str
    destination: str
    started_at: datetime
    used: int
    granted: int
    expires_at: datetime
    holds: dict
    charged: Decimal
    included: int
    shortfall: Decimal


@router.get("/charging/sessions/{session_id}", response={200: SessionOut, **ERRORS}, summary="A charging session")
def get_session(request, session_id: str):
    key = service.session_key(session_id)
    if key is None:
        raise NotFound(f"session {session_id} not found", field="session_id")
    return ChargingSession.objects.get_or_404("session", key=key)
