"""CDS Hooks 2.0 service that codes radioelement therapy orders (CPT 77750 and its alternatives)."""

# The one place the version is written: pyproject.toml reads it (dynamic version), the CLI's
# --version, the OpenAPI document and the wheel's metadata all come from here.
__version__ = "0.1.0"
