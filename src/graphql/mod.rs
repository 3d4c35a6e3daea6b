//! The GraphQL schema: roots merged from one object per area, context helpers, and limits.

pub mod loaders;
pub mod mutation;
pub mod query;
pub mod subscription;
pub mod types;
pub mod validation;

use crate::auth::{Caller, Role};
// The limits are a setting, read by `config`; callers of `build_schema` keep naming them here.
pub use crate::config::Limits;
use crate::error::AppError;
use crate::state::AppState;
use async_graphql::{Context, MergedObject, Schema, ID};
use subscription::Subscription;
use uuid::Uuid;

/// The query root.
#[derive(MergedObject, Default)]
pub struct Query(
    query::me::MeQuery,
    query::queue::QueueQuery,
    query::settings::SettingsQuery,
    query::mail::MailQuery,
    query::submissions::SubmissionsQuery,
    query::allowblock::AllowBlockQuery,
    query::audit::AuditQuery,
    query::actions::ActionsQuery,
    query::mailserver::MailServerQuery,
);

/// The mutation root.
#[derive(MergedObject, Default)]
pub struct Mutation(
    mutation::ingest::IngestMutation,
    mutation::mail::MailMutation,
    mutation::submissions::SubmissionsMutation,
    mutation::triage::TriageMutation,
    mutation::incidents::IncidentsMutation,
    mutation::settings::SettingsMutation,
    mutation::allowblock::AllowBlockMutation,
    mutation::actions::ActionsMutation,
    mutation::mailserver::MailServerMutation,
);

/// The executable schema.
pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Builds the schema with the state in its context data.
pub fn build_schema(state: AppState, limits: &Limits) -> AppSchema {
    let mut builder = Schema::build(Query::default(), Mutation::default(), Subscription)
        .extension(loaders::PerRequestLoaders::new(state.pool.clone()))
        .extension(validation::CodedValidation::new(limits))
        .data(state)
        .limit_depth(limits.depth)
        .limit_complexity(limits.complexity);
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

/// The SDL `parapet schema` prints and `schema.graphql` holds.
pub fn sdl() -> String {
    Schema::build(Query::default(), Mutation::default(), Subscription).finish().sdl()
}

/// The authenticated caller, or `UNAUTHENTICATED`.
pub fn caller<'a>(ctx: &'a Context<'_>) -> Result<&'a Caller, AppError> {
    match ctx.data_opt::<Caller>() {
        Some(c) => Ok(c),
        None => Err(match ctx.data_opt::<AuthFailure>() {
            Some(f) => f.0.clone(),
            None => AppError::Unauthenticated("a bearer token is required".into()),
        }),
    }
}

/// The caller, after checking it holds `role`.
pub fn require<'a>(ctx: &'a Context<'_>, role: Role) -> Result<&'a Caller, AppError> {
    let c = caller(ctx)?;
    c.require(role)?;
    Ok(c)
}

/// Parses a client-supplied id; a malformed one is `BAD_USER_INPUT`.
pub fn parse_id(id: &ID) -> Result<Uuid, AppError> {
    Uuid::parse_str(id.as_str()).map_err(|_| {
        AppError::bad(format!("{} is not a valid id (a UUID)", crate::domain::text::excerpt(id.as_str())))
    })
}

/// The shared state.
pub fn state<'a>(ctx: &'a Context<'_>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}

/// Why a request's token was refused; resolvers that need a caller report it as `UNAUTHENTICATED`.
#[derive(Debug, Clone)]
pub struct AuthFailure(pub AppError);
