"""The usage rating engine (pure, vectorised): `rate` prices mediated records; `cover_with_money`
marks what prepaid money covers. Rules: docs/usage-rating.md."""
from obol.usage.rating.engine import RATED_COLUMNS, RECORD_COLUMNS, Rated, rate
from obol.usage.rating.lookup import REASONS
from obol.usage.rating.prepaid import cover_with_money

__all__ = ["RATED_COLUMNS", "REASONS", "RECORD_COLUMNS", "Rated", "cover_with_money", "rate"]
