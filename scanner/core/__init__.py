"""What every layer may use: the vocabulary, errors, the plain data classes, the scope and the knowledge tables.
Imports nothing else from tcmscan."""
