//! Query functions, one module per table family. Each takes a connection and the tenant id.

pub mod actions;
pub mod activity;
pub mod activity_log;
pub mod alerts;
pub mod allow_block;
pub mod audit;
pub mod comments;
pub mod correlation;
pub mod emails;
pub mod events;
pub mod evidence;
pub mod explorer;
pub mod incidents;
pub mod jobs;
pub mod mail_servers;
pub mod manual;
pub mod meta;
pub mod queue;
pub mod remote_targets;
pub mod submissions;
pub mod tenants;
pub mod triage;
