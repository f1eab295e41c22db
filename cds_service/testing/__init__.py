"""Test doubles that sit at the edge only: a real HTTP FHIR server on 127.0.0.1."""
