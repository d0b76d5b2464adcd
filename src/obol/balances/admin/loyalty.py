"""Back-office admin: loyalty."""
