"""Back-office admin: pockets."""
