"""tcmscan baselines."""
