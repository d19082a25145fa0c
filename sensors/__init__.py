"""Radar models, the notional US/JP/KR sensor catalog and measurement geometry (AER)."""
