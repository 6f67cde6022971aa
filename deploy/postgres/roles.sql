-- The portal's database and its two roles. Run once, as a PostgreSQL superuser:
--   sudo -u postgres psql -v owner=portal_owner -v app=portal_app -v database=call_recording_portal \
--        -f deploy/postgres/roles.sql
-- then give each role a password: sudo -u postgres psql -c '\password portal_owner' (and portal_app).
--
-- owner: owns the schema, runs migrations, backups and restores (deploy/bin/portal-migrate, -backup, -restore).
-- app:   what the portal runs as. It reads and writes the portal's tables, but may only add to the audit
--        tables, and as it owns none of them it cannot switch off their append-only triggers.
\set ON_ERROR_STOP on
CREATE ROLE :"owner" LOGIN;
CREATE ROLE :"app" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
\ir database.sql
