"""Dagster definitions, one module per lifecycle stage; thin wrappers over the plain-Python modules."""
