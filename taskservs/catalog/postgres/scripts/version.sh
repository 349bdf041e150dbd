# The major version of the installed PostgreSQL.
pg_major || true
