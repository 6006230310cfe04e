"""Scoring annotation runs against known answers."""
