"""One panel per concern; probe panels are one per probe type, not per model (DESIGN.md)."""
