//! Comments on incidents and alerts: append-only, each with an activity-log row. They change neither the
//! incident's fields nor its version; a comment on an incident moves its `lastUpdateAt`.

use super::changes::{Changes, Entry};
use super::incident::ensure_not_redirected;
use super::kind;
use crate::auth::Caller;
use crate::db::models::Comment;
use crate::db::queries;
use crate::db::queries::triage as q;
use crate::db::Conn;
use crate::domain::activity::comment_excerpt;
use crate::domain::text;
use crate::error::AppResult;
use diesel_async::AsyncConnection;
use serde_json::json;
use uuid::Uuid;

/// Adds a comment to an incident (not to a merged one: it would go unseen there).
pub async fn add_incident_comment(
    conn: &mut Conn,
    caller: &Caller,
    id: Uuid,
    body: &str,
) -> AppResult<Comment> {
    let body = text::comment(body)?;
    let tenant = caller.tenant_id.as_str();
    conn.transaction(async |c| {
        // The row lock keeps a merge from redirecting the incident under the new comment.
        let incident =
            q::lock_incident(c, tenant, id).await?.ok_or_else(|| super::incident::not_found(id))?;
        ensure_not_redirected(&incident)?;
        let mut changes = Changes::new(tenant);
        let comment = new_comment(caller, Some(id), None, body, &changes);
        let comment = queries::comments::insert(c, &comment).await?;
        q::touch_incident(c, tenant, id, changes.now).await?;
        changes.push(
            Entry::incident(id, &caller.sub, kind::COMMENT, comment_excerpt(&comment.body))
                .after(json!({ "commentId": comment.id })),
        );
        changes.commit(c).await?;
        Ok(comment)
    })
    .await
}

/// Adds a comment to an alert. The comment belongs to the alert (it follows it if a merge moves it); its
/// activity row also names the alert's current incident, so the incident's log shows it.
pub async fn add_alert_comment(conn: &mut Conn, caller: &Caller, id: Uuid, body: &str) -> AppResult<Comment> {
    let body = text::comment(body)?;
    let tenant = caller.tenant_id.as_str();
    conn.transaction(async |c| {
        let incident_id =
            q::alert_incident_id(c, tenant, id).await?.ok_or_else(|| super::alert::not_found(id))?;
        let mut changes = Changes::new(tenant);
        let comment = new_comment(caller, None, Some(id), body, &changes);
        let comment = queries::comments::insert(c, &comment).await?;
        changes.push(
            Entry::alert(id, incident_id, &caller.sub, kind::COMMENT, comment_excerpt(&comment.body))
                .after(json!({ "commentId": comment.id })),
        );
        changes.commit(c).await?;
        Ok(comment)
    })
    .await
}

fn new_comment(
    caller: &Caller,
    incident_id: Option<Uuid>,
    alert_id: Option<Uuid>,
    body: String,
    changes: &Changes,
) -> Comment {
    Comment {
        tenant_id: caller.tenant_id.clone(),
        id: Uuid::now_v7(),
        incident_id,
        alert_id,
        author: caller.sub.clone(),
        author_name: Some(caller.name.clone()),
        body,
        created_at: changes.now,
    }
}
