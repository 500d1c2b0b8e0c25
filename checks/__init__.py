"""Built-in check families. Each check is one module; it registers under the tcmscan.checks entry-point group."""
