//! What the job runner runs: each job kind's handler, chosen by kind. Above the services the kinds
//! belong to, so the runner itself (`jobs`) knows none of them.

use crate::db::Pool;
use crate::jobs::{runner::Run, Job};
use crate::mailserver::server::MailAccess;
use std::sync::Arc;

/// The handler every replica's runner calls: remediation actions by `actions::JOB_KIND`; any other
/// kind fails for good, saying so.
/// `access` opens tenants' mail servers for actions that run there.
pub fn handler(pool: Pool, access: Arc<MailAccess>) -> impl Fn(Job) -> Run + Send + Sync + 'static {
    move |job: Job| -> Run {
        match job.kind.as_str() {
            crate::actions::JOB_KIND => {
                let (pool, access) = (pool.clone(), access.clone());
                Box::pin(async move { crate::actions::run::run(&pool, &access, &job).await })
            }
            _ => crate::jobs::dispatch(job),
        }
    }
}
