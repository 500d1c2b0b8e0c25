"""tcmscan lab."""
