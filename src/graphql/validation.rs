//! Validation errors with a code and a clear message: async-graphql reports a query over the depth or
//! complexity limit, or one that does not fit the schema, with no `extensions.code`.

use super::Limits;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation};
use async_graphql::{ServerError, ValidationResult};
use std::sync::Arc;

/// The code of a query the server refuses before running it.
pub const CODE: &str = "GRAPHQL_VALIDATION_FAILED";

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
        let has_code = e.extensions.as_ref().is_some_and(|x| x.get("code").is_some());
        if !has_code {
            let mut ext = e.extensions.take().unwrap_or_default();
            ext.set("code", CODE);
            e.extensions = Some(ext);
        }
        e
    }
}
