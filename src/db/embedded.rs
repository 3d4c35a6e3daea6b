//! The embedded PostgreSQL launcher: with no `DATABASE_URL`, run a private cluster from the machine's
//! PostgreSQL binaries under the data dir, on a Unix socket only.
