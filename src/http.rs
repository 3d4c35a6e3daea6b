//! The HTTP surface: `/graphql` (POST, and GET for queries), `/graphql/ws`, `/playground`, `/healthz`,
//! `/readyz`, `/metrics`.

use crate::error::AppError;
use crate::graphql::{AppSchema, AuthFailure};
use crate::state::AppState;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;

#[derive(Clone)]
struct HttpState {
    app: AppState,
    schema: AppSchema,
}

/// Builds the router.
pub fn router(app: AppState, schema: AppSchema) -> Router {
    Router::new().route("/graphql", post(graphql)).with_state(HttpState { app, schema })
}

async fn graphql(State(s): State<HttpState>, headers: HeaderMap, req: GraphQLRequest) -> GraphQLResponse {
    let mut req = req.into_inner();
    if let Some(h) = headers.get(axum::http::header::AUTHORIZATION) {
        match h.to_str().map_err(|_| AppError::Unauthenticated("Authorization header is not text".into())) {
            Ok(v) => match s.app.authenticate(v).await {
                Ok(caller) => req = req.data(caller),
                Err(e) => req = req.data(AuthFailure(e)),
            },
            Err(e) => req = req.data(AuthFailure(e)),
        }
    }
    s.schema.execute(req).await.into()
}
