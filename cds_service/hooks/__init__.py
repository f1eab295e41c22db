"""Hook plumbing: service catalogue, envelope checks, prefetch fallback, response assembly."""
