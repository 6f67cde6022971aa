-- Make the portal's (empty) database, owned by the owner role, that only the two roles may connect to.
-- Used by roles.sql (first install) and deploy/bin/portal-restore. Run as a PostgreSQL superuser with
-- -v owner=… -v app=… -v database=…
\set ON_ERROR_STOP on
CREATE DATABASE :"database" OWNER :"owner" ENCODING 'UTF8';
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"database" TO :"owner";
GRANT CONNECT ON DATABASE :"database" TO :"app";
\connect :"database"
ALTER SCHEMA public OWNER TO :"owner";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app";
