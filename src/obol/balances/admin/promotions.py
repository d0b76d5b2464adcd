"""Back-office admin: promotions."""
