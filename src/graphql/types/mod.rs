//! GraphQL object types, one module per entity. They wrap row models and resolve nested fields through
//! the loaders.

pub mod action;
pub mod activity;
pub mod alert;
pub mod allowblock;
pub mod audit;
pub mod comment;
pub mod connection;
pub mod email;
pub mod evidence;
pub mod filters;
pub mod incident;
pub mod mailserver;
pub mod settings;
pub mod submission;
pub mod summary;
