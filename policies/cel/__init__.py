"""User rules in CEL: ValidatingAdmissionPolicy semantics on the change set (see rules.py)."""
