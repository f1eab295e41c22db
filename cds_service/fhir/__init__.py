"""FHIR at the edge: lenient normalisation, validation with fhir.resources (R4B), and the HTTP client."""
