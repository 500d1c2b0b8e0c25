"""Judging stored facts: baseline profiles and rules, the expression language, evaluation, grading."""
