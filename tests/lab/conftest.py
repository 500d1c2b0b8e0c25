"""The lab fixtures (`lab`, `lab_session`) live in tests/conftest.py: one lab per test session."""
