"""tcmscan scanner."""
