"""How fast /dashboard renders on a large audit trail (issue 15: under 1 s for one million audit
rows and 200,000 feedback rows on PostgreSQL). Not a test: it prints the figures.

It creates a throw-away schema in the given PostgreSQL database, lets the service create its
tables and indexes there, seeds it in SQL (``generate_series``: seconds, not minutes), renders
the page through the real app (Flask test client: the whole request, SQL aggregation, SVG and
HTML, without network), and drops the schema at the end, whatever happens.

    python bench/dashboard.py                                # 1,000,000 audit rows, 200,000 feedback
    python bench/dashboard.py --audit-rows 100000 --feedback-rows 20000 --days 30
    python bench/dashboard.py --database postgresql://postgres@127.0.0.1:5432/test --repeat 7
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import date, datetime, time as day_start, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402

from cds_service.app import create_app  # noqa: E402
from cds_service.config import Settings  # noqa: E402
from cds_service.ops.report import build_report  # noqa: E402
from cds_service.storage.db import make_engine, migrate  # noqa: E402
from cds_service.testing.postgres import sqlalchemy_url  # noqa: E402


SEED_AUDIT = """
INSERT INTO audit (hook_instance, service_id, hook, status, started_at, duration_ms, fetch_ms, engine_ms,
                   fetched_keys, unavailable_keys, knowledge_version, decision_count, recommended_codes,
                   documentation_gaps, card_types, checks_unavailable)
SELECT 'bench-' || g,
       CASE WHEN g % 4 = 0 THEN 'radioelement-order-select' ELSE 'radioelement-order-sign' END,
       CASE WHEN g % 4 = 0 THEN 'order-select' ELSE 'order-sign' END,
       CASE WHEN g % 20 = 0 THEN 400 ELSE 200 END,
       timestamptz '{first} 00:00:00+00' + (g::float8 / :rows) * interval '{days} days',
       5 + (hashint % 400) + (hashint % 7) / 10.0, 1.0, 2.0,
       '[]'::json,
       CASE WHEN g % 29 = 0 THEN '["coverage"]'::json WHEN g % 31 = 0 THEN '["observations","reports"]'::json
            ELSE '[]'::json END,
       CASE WHEN g::float8 / :rows < 0.6 THEN '2026.1' ELSE '2026.2' END,
       CASE WHEN g % 20 = 0 THEN NULL WHEN g % 9 = 0 THEN 2 ELSE 1 END,
       CASE WHEN g % 20 = 0 THEN NULL
            WHEN g % 9 = 0 THEN jsonb_build_array((ARRAY['77750','79101','79005','79403'])[1 + hashint % 4], '77778')
            ELSE jsonb_build_array((ARRAY['77750','79101','79005','79403','77761'])[1 + hashint % 5]) END,
       CASE WHEN g % 20 = 0 OR hashint % 3 <> 0 THEN NULL
            WHEN hashint % 2 = 0 THEN '["imaging-confirmation"]'::jsonb
            ELSE jsonb_build_array((ARRAY['written-directive','dosimetry-plan','pathology','staging'])[1 + hashint % 4],
                                   'activity') END,
       CASE WHEN g % 20 = 0 THEN NULL ELSE '["code","documentation"]'::jsonb END,
       CASE WHEN g % 20 = 0 THEN NULL ELSE (g % 29 = 0 OR g % 31 = 0) END
FROM (SELECT g, abs(hashtext(g::text)) AS hashint FROM generate_series(1, :rows) AS g) AS numbers
"""

SEED_CARDS = """
INSERT INTO issued_cards (card_uuid, hook_instance, service_id, card_type, indicator, recommended_code,
                          knowledge_version, issued_at)
SELECT 'card-' || id, hook_instance, service_id,
       (ARRAY['code','documentation','edit'])[1 + id % 3], 'info', recommended_codes ->> 0, knowledge_version,
       started_at
FROM audit WHERE status = 200
"""

SEED_FEEDBACK = """
INSERT INTO feedback (service_id, card_uuid, outcome, override_code, override_display, outcome_timestamp,
                      received_at)
SELECT c.service_id, c.card_uuid,
       CASE WHEN abs(hashtext(c.card_uuid)) % 10 < 6 THEN 'accepted' ELSE 'overridden' END,
       CASE WHEN abs(hashtext(c.card_uuid)) % 10 < 6 THEN NULL
            ELSE (ARRAY['payer-policy','clinical-judgement','already-documented', NULL])[1 + abs(hashtext(c.card_uuid)) % 4]
       END,
       NULL,
       c.issued_at + interval '2 hours', c.issued_at + interval '2 hours'
FROM issued_cards AS c
ORDER BY hashtext(c.card_uuid)
LIMIT :rows
"""


def seed(engine, audit_rows: int, feedback_rows: int, first: date, days: int) -> dict[str, int]:
    with engine.begin() as connection:
        connection.execute(text(SEED_AUDIT.format(first=first.isoformat(), days=days)), {"rows": audit_rows})
        connection.execute(text(SEED_CARDS))
        connection.execute(text(SEED_FEEDBACK), {"rows": feedback_rows})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE audit"))
        connection.execute(text("VACUUM ANALYZE issued_cards"))
        connection.execute(text("VACUUM ANALYZE feedback"))
        return {table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("audit", "issued_cards", "feedback")}


def timed(client, path: str, repeat: int) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}: {response.get_data(as_text=True)[:300]}")
        size = len(response.data)
    return times, size


def describe(label: str, times: list[float], size: int) -> str:
    return (f"{label:<44} median {statistics.median(times) * 1000:7.0f} ms   min {min(times) * 1000:7.0f} ms   "
            f"max {max(times) * 1000:7.0f} ms   ({size:,} bytes)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="PostgreSQL database to create the throw-away schema in")
    parser.add_argument("--audit-rows", type=int, default=1_000_000)
    parser.add_argument("--feedback-rows", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=90, help="days the audit rows are spread over")
    parser.add_argument("--repeat", type=int, default=5, help="timed renders per page (after one warm-up)")
    args = parser.parse_args()

    schema = f"bench_dashboard_{uuid.uuid4().hex[:10]}"
    admin = make_engine(sqlalchemy_url(args.database))
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = sqlalchemy_url(args.database, schema=schema)
    app = None
    try:
        engine = make_engine(url)
        migrate(engine)
        last = datetime.now(timezone.utc).date()  # the rows end today, which stays live
        first = last - timedelta(days=args.days - 1)
        started = time.perf_counter()
        counts = seed(engine, args.audit_rows, args.feedback_rows, first, args.days)
        print(f"seeded in {time.perf_counter() - started:.1f} s: "
              + ", ".join(f"{table} {n:,} rows" for table, n in counts.items()))
        engine.dispose()

        app = create_app(Settings(database_url=url, auth_enabled=False, log_level="WARNING"))
        client = app.test_client()
        whole = f"since={first}&until={last}"
        month = f"since={last - timedelta(days=29)}&until={last}"
        pages = [
            (f"/dashboard, all {args.days} days (every row)", f"/dashboard?{whole}"),
            ("/dashboard, all days, one service", f"/dashboard?{whole}&service=radioelement-order-sign"),
            ("/dashboard, last 30 days (the default span)", f"/dashboard?{month}"),
            ("/dashboard/calls-per-day.csv, all days", f"/dashboard/calls-per-day.csv?{whole}"),
            ("/dashboard/override-reasons.csv, all days", f"/dashboard/override-reasons.csv?{whole}"),
        ]
        cold, size = timed(client, pages[0][1], 1)
        print(describe(f"first render (computes and stores {args.days - 1} days)", cold, size))
        for label, path in pages:
            client.get(path)  # warm-up: connection pool, templates, PostgreSQL's caches
            times, size = timed(client, path, args.repeat)
            print(describe(label, times, size))
        with app.extensions["cds_db"].begin() as connection:  # forget the stored days: every day live
            connection.execute(text("DELETE FROM dashboard_rollup"))
            connection.execute(text("DELETE FROM dashboard_rollup_mark"))
        times, size = [], 0
        for _ in range(max(1, args.repeat // 2)):
            live = app.extensions["cds_db"]
            started = time.perf_counter()
            from cds_service.ops.audit_stats import audit_stats as live_stats
            live_stats(live, datetime.combine(first, day_start.min, timezone.utc),
                       datetime.combine(last + timedelta(days=1), day_start.min, timezone.utc))
            build_report(live, datetime.combine(first, day_start.min, timezone.utc),
                         datetime.combine(last + timedelta(days=1), day_start.min, timezone.utc))
            times.append(time.perf_counter() - started)
        print(describe("aggregation with nothing stored (all live)", times, 0))

        # The page's feedback numbers are the report's: show the totals side by side.
        html = client.get(f"/dashboard?{whole}").get_data(as_text=True)
        start = datetime.combine(first, day_start.min, timezone.utc)
        end = datetime.combine(last + timedelta(days=1), day_start.min, timezone.utc)
        report = build_report(app.extensions["cds_db"], start, end)
        shown = html.split('<dd id="figure-feedback">')[1].split("<")[0]
        print(f"feedback items: report {report['total']['feedback']:,}, dashboard {shown}")
        return 0
    finally:
        if app is not None:
            app.extensions["cds_db"].dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
