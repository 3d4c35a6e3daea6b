//! Parapet: an incident and alert management server for e-mail security operations, over GraphQL.
//!
//! Layers (ARCHITECTURE.md, README "Layers"): `graphql` (thin resolvers) → domain services (`ingest`,
//! `correlation`, `triage`, `incidents`, `tenants`, `allowblock`) → `events` (the outbox) → `db` (tables
//! and queries) → `domain` (shared types and rules). `http` serves it; `config` reads the settings.
//! `tests/layers.rs` fails on an import that goes up.

pub mod actions;
pub mod allowblock;
pub mod auth;
pub mod config;
pub mod correlation;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod explorer;
pub mod graphql;
pub mod http;
pub mod incidents;
pub mod ingest;
pub mod jobs;
pub mod mail;
pub mod mailserver;
pub mod metrics;
pub mod playground;
pub mod state;
pub mod submissions;
pub mod tenants;
pub mod triage;
pub mod work;
pub mod ws;
