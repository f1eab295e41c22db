"""HTTP edge: Flask blueprints for discovery, service calls and feedback, plus errors and CORS."""
