//! Alert ingestion: validation of pushed alerts and their evidence, then correlation in one transaction
//! per batch. Good items are committed even when others in the batch are rejected.

pub mod input;
pub mod learn;
pub mod service;
pub mod validate;
