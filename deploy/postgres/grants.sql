-- What the portal's role may do, table by table. deploy/bin/portal-migrate runs this as the owner after
-- every migration (new tables included); it is safe to run again.
--   psql "$MIGRATION_DATABASE_URL" -v app=portal_app -f deploy/postgres/grants.sql
\set ON_ERROR_STOP on
BEGIN;
GRANT USAGE ON SCHEMA public TO :"app";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app";
-- The audit trail: events, check results and daily anchors can be added and read, never changed or removed.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_event, audit_check, audit_anchor FROM :"app";
-- The chain's head row moves forward with every event (it is also the lock that keeps the chain in order).
REVOKE INSERT, DELETE, TRUNCATE ON audit_chain_head FROM :"app";
-- The schema's version is the owner's business.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM :"app";
COMMIT;
