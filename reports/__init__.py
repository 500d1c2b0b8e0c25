"""tcmscan reports."""
