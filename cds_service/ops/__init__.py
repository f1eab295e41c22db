"""Operations: health and readiness, Prometheus metrics, structured call logs, feedback report.

Everything here is observational: it reads what the service did and never changes an answer.
"""
