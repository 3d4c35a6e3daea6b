//! GraphQL object types, one module per entity. They wrap row models and resolve nested fields through
//! the loaders.

pub mod alert;
pub mod incident;
