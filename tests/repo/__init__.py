"""Tests of reading repositories."""
