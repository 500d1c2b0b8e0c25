"""services checks."""
