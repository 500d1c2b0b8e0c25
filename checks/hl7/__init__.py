"""HL7 v2 / MLLP checks."""
