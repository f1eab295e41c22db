"""CDS Hooks 2.0 service that codes radioelement therapy orders (CPT 77750 and its alternatives)."""

__version__ = "0.1.0"
