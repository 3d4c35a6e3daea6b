//! Incidents by id: an alert's incident, an incident's redirect target.

use super::{distinct_ids, group, Loaders, Member, Memo, QueueLoader, SetKind};
use crate::db::models;
use crate::db::queries::incidents;
use crate::error::AppError;
use async_graphql::dataloader::Loader;
use std::collections::HashMap;
use uuid::Uuid;

impl Loaders {
    /// The incident of alert `a`.
    pub async fn incident_of_alert(&self, a: &models::Alert) -> Result<Option<models::Incident>, AppError> {
        let tenant = a.tenant_id.as_str();
        self.load_with_siblings(
            SetKind::Alert,
            tenant,
            Member::alert(a),
            Memo::AlertIncident,
            |t, m| m.link.map(|id| IncidentKey { tenant: t.to_string(), id }),
            |l, found: &HashMap<IncidentKey, models::Incident>| {
                Some(l.register_incidents(tenant, found.values()))
            },
        )
        .await
        .map(|(incident, _)| incident)
    }

    /// The incident that incident `i` was merged into, if any.
    pub async fn redirect_target(&self, i: &models::Incident) -> Result<Option<models::Incident>, AppError> {
        let tenant = i.tenant_id.as_str();
        self.load_with_siblings(
            SetKind::Incident,
            tenant,
            Member::incident(i),
            Memo::RedirectIncident,
            |t, m| m.link.map(|id| IncidentKey { tenant: t.to_string(), id }),
            |l, found: &HashMap<IncidentKey, models::Incident>| {
                Some(l.register_incidents(tenant, found.values()))
            },
        )
        .await
        .map(|(incident, _)| incident)
    }
}

/// An incident by id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IncidentKey {
    /// Tenant.
    pub tenant: String,
    /// Incident id.
    pub id: Uuid,
}

impl Loader<IncidentKey> for QueueLoader {
    type Value = models::Incident;
    type Error = AppError;

    async fn load(&self, keys: &[IncidentKey]) -> Result<HashMap<IncidentKey, Self::Value>, AppError> {
        let mut conn = self.conn().await?;
        let mut out = HashMap::new();
        for (tenant, ks) in group(keys, |k| k.tenant.clone()) {
            let rows = incidents::find_many(&mut conn, &tenant, &distinct_ids(&ks, |k| k.id)).await?;
            for r in rows {
                out.insert(IncidentKey { tenant: tenant.clone(), id: r.id }, r);
            }
        }
        Ok(out)
    }
}
