"""tcmscan checks."""
