"""REST routes: promotions."""
from ninja import Router

router = Router(tags=["balances"])
