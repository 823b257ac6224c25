"""Formatting a preview for people (Markdown) and machines (JSON). Formatting only, no I/O."""
