"""REST routes: pockets."""
from ninja import Router

router = Router(tags=["balances"])
