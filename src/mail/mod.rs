//! The mail store: mail-flow records pushed by gateways (one row per copy, i.e. message per recipient),
//! copies learned from alerts' e-mail evidence, each copy's delivery timeline, and retention by weekly
//! partition.

pub mod decide;
pub mod ingest;
pub mod input;
pub mod overrides;
pub mod partitions;
pub mod validate;
