"""Open ports and what answers on them."""
