//! Threat Explorer: hunting over the last 30 days of the mail store. Filters are validated and turned
//! into lookup keys here; the database layer runs them.

pub mod filter;
pub mod hunt;
