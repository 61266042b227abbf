"""Tests for tap-partner-billing."""
