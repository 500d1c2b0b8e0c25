"""Patient data behind web APIs (PACS REST, DICOMweb): answered without a login? Counts and names only."""
