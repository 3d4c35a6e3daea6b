//! Parapet: an incident and alert management server for e-mail security operations, over GraphQL.
//!
//! Layers (ARCHITECTURE.md): `graphql` (thin resolvers) → domain services (`ingest`, `correlation`,
//! `incidents`, `triage`) → `db` (tables and queries). `http` serves it; `config` reads the settings.

pub mod auth;
pub mod config;
pub mod correlation;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod incidents;
pub mod ingest;
pub mod metrics;
pub mod state;
pub mod tenants;
pub mod triage;
pub mod ws;
