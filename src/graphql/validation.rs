//! Errors async-graphql itself raises, given a code (it gives none) and, for the limits, a clear
//! message: a document that does not parse (`GRAPHQL_PARSE_FAILED`), a query over the depth or
//! complexity limit or one that does not fit the schema (`GRAPHQL_VALIDATION_FAILED`), and a variable
//! or argument whose value is not of its type, say an `Int` past 32 bits or a `DateTime` out of range
//! (`BAD_USER_INPUT`).

use super::Limits;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Variables};
use std::sync::Arc;

/// The code of a query the server refuses before running it.
pub const CODE: &str = "GRAPHQL_VALIDATION_FAILED";
/// The code of a document that is not GraphQL.
pub const PARSE_CODE: &str = "GRAPHQL_PARSE_FAILED";
/// The code of a value that is not of its input type (the resolvers' own checks use it too).
pub const INPUT_CODE: &str = "BAD_USER_INPUT";

/// Gives `e` the code `code` unless it has one.
fn with_code(mut e: ServerError, code: &str) -> ServerError {
    let has_code = e.extensions.as_ref().is_some_and(|x| x.get("code").is_some());
    if !has_code {
        let mut ext = e.extensions.take().unwrap_or_default();
        ext.set("code", code);
        e.extensions = Some(ext);
    }
    e
}

/// Whether async-graphql raised `e` while turning a variable or argument into its input type.
fn is_coercion(e: &ServerError) -> bool {
    e.message.starts_with("Failed to parse") || e.message.starts_with("Invalid value for argument")
}

/// Schema extension giving validation errors [`CODE`] and, for the limits, a message naming them.
pub struct CodedValidation {
    limits: Limits,
}

impl CodedValidation {
    /// Names `limits` in its messages.
    pub fn new(limits: &Limits) -> Self {
        Self { limits: limits.clone() }
    }
}

impl ExtensionFactory for CodedValidation {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(CodedValidationExt { limits: self.limits.clone() })
    }
}

struct CodedValidationExt {
    limits: Limits,
}

#[async_graphql::async_trait::async_trait]
impl Extension for CodedValidationExt {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| errors.into_iter().map(|e| self.coded(e)).collect())
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables).await.map_err(|e| with_code(e, PARSE_CODE))
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        for e in &mut response.errors {
            if is_coercion(e) {
                *e = with_code(std::mem::replace(e, ServerError::new("", None)), INPUT_CODE);
            }
        }
        response
    }
}

impl CodedValidationExt {
    fn coded(&self, mut e: ServerError) -> ServerError {
        if e.message.starts_with("Query is too complex") {
            e.message = format!(
                "the query is too complex (the limit is {}): each list counts by its page size (`first`, \
                 or its default page) times what every item asks for, so ask for smaller pages or fewer \
                 nested lists, and fetch more with `after`",
                self.limits.complexity
            );
        } else if e.message.starts_with("Query is nested too deep") {
            e.message = format!("the query is nested too deep (the limit is {} levels)", self.limits.depth);
        }
        with_code(e, CODE)
    }
}
