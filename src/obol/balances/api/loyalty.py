"""REST routes: loyalty."""
from ninja import Router

router = Router(tags=["balances"])
