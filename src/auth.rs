//! JWT verification and minting, the caller's identity, and the role model (DOMAIN.md §2).

use crate::error::AppError;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Roles a token may carry. `Reader < Analyst < Responder < Admin` are cumulative; `Ingestor` stands apart.
#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything in the tenant.
    Reader,
    /// Triage: update, comment, correlate by hand, investigate, propose.
    Analyst,
    /// Approve and run remediation.
    Responder,
    /// Tenant settings and allow/block list.
    Admin,
    /// A detection source or mail gateway that pushes data.
    Ingestor,
}

impl Role {
    /// Parses the claim spelling (`reader`, `analyst`, ...).
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "reader" => Some(Role::Reader),
            "analyst" => Some(Role::Analyst),
            "responder" => Some(Role::Responder),
            "admin" => Some(Role::Admin),
            "ingestor" => Some(Role::Ingestor),
            _ => None,
        }
    }

    /// The claim spelling.
    pub fn as_claim(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Analyst => "analyst",
            Role::Responder => "responder",
            Role::Admin => "admin",
            Role::Ingestor => "ingestor",
        }
    }

    fn rank(self) -> Option<u8> {
        match self {
            Role::Reader => Some(1),
            Role::Analyst => Some(2),
            Role::Responder => Some(3),
            Role::Admin => Some(4),
            Role::Ingestor => None,
        }
    }
}

/// The claims Parapet reads from a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The person or service, a UPN such as `alice@contoso.com`.
    pub sub: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tenant id.
    pub tid: String,
    /// Role names.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Service source an ingestor is limited to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub svc: Option<String>,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `sub` claim.
    pub sub: String,
    /// Display name (falls back to `sub`).
    pub name: String,
    /// Tenant the caller acts in.
    pub tenant_id: String,
    /// Known roles from the token (unknown names are ignored).
    pub roles: Vec<Role>,
    /// Service source an ingestor is limited to.
    pub svc: Option<String>,
    /// Token expiry, seconds since the epoch.
    pub expires_at: i64,
}

impl Caller {
    /// Whether the caller holds `role`, counting the cumulative order (`admin` holds `analyst`, ...).
    /// `Ingestor` is held by `ingestor` and `admin` tokens.
    pub fn has(&self, role: Role) -> bool {
        match role.rank() {
            None => self.roles.iter().any(|r| matches!(r, Role::Ingestor | Role::Admin)),
            Some(need) => self.roles.iter().filter_map(|r| r.rank()).any(|have| have >= need),
        }
    }

    /// `Ok` when the caller holds `role`, else `FORBIDDEN` naming it.
    pub fn require(&self, role: Role) -> Result<(), AppError> {
        if self.has(role) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!("this operation needs the {} role", role.as_claim())))
        }
    }
}

/// How tokens are checked: the algorithm is pinned by configuration.
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl JwtVerifier {
    /// HS256 with a shared secret.
    pub fn hs256(secret: &[u8], issuer: &str, audience: &str) -> Self {
        Self::new(DecodingKey::from_secret(secret), vec![Algorithm::HS256], issuer, audience)
    }

    /// RS256 or ES256 with a PEM public key; HS256 is then refused.
    pub fn public_key(pem: &[u8], issuer: &str, audience: &str) -> anyhow::Result<Self> {
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Ok(Self::new(key, vec![Algorithm::RS256], issuer, audience));
        }
        let key = DecodingKey::from_ec_pem(pem).map_err(|e| {
            anyhow::anyhow!("PARAPET_JWT_PUBLIC_KEY is neither an RSA nor an EC PEM key: {e}")
        })?;
        Ok(Self::new(key, vec![Algorithm::ES256], issuer, audience))
    }

    fn new(key: DecodingKey, algorithms: Vec<Algorithm>, issuer: &str, audience: &str) -> Self {
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        Self { key, validation }
    }

    /// Verifies a bearer token and returns the caller, or `UNAUTHENTICATED` saying why.
    pub fn verify(&self, token: &str) -> Result<Caller, AppError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| AppError::Unauthenticated(format!("invalid token: {}", describe(&e))))?;
        let c = data.claims;
        if c.tid.trim().is_empty() || c.tid.len() > 128 {
            return Err(AppError::Unauthenticated("invalid token: bad tid claim".into()));
        }
        if c.sub.trim().is_empty() {
            return Err(AppError::Unauthenticated("invalid token: empty sub claim".into()));
        }
        // These claims are written as tenant ids and actors: refuse what PostgreSQL cannot store.
        let claims = [
            ("tid", Some(&c.tid)),
            ("sub", Some(&c.sub)),
            ("name", c.name.as_ref()),
            ("svc", c.svc.as_ref()),
        ];
        for (claim, value) in claims {
            if let Some(v) = value {
                crate::domain::text::storable(claim, v)
                    .map_err(|m| AppError::Unauthenticated(format!("invalid token: the {m}")))?;
            }
        }
        let roles = c.roles.iter().filter_map(|r| Role::parse(r)).collect();
        Ok(Caller {
            name: c.name.clone().unwrap_or_else(|| c.sub.clone()),
            sub: c.sub,
            tenant_id: c.tid,
            roles,
            svc: c.svc,
            expires_at: c.exp,
        })
    }

    /// Verifies an `Authorization` header value (`Bearer <jwt>`).
    pub fn verify_header(&self, header: &str) -> Result<Caller, AppError> {
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| AppError::Unauthenticated("Authorization must be 'Bearer <token>'".into()))?;
        self.verify(token.trim())
    }
}

fn describe(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "expired",
        K::ImmatureSignature => "not valid yet",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidAudience => "wrong audience",
        K::InvalidAlgorithm => "algorithm not accepted",
        K::InvalidSignature => "bad signature",
        K::MissingRequiredClaim(_) => "a required claim is missing",
        _ => "malformed",
    }
}

/// What `parapet token` and the tests put in a token.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    /// Tenant id.
    pub tenant: String,
    /// Subject (UPN).
    pub sub: String,
    /// Display name.
    pub name: Option<String>,
    /// Role names.
    pub roles: Vec<Role>,
    /// Service source for ingestors.
    pub svc: Option<String>,
    /// Lifetime in seconds (may be negative to make an expired token in tests).
    pub ttl_secs: i64,
}

/// Signs an HS256 token.
pub fn mint_hs256(spec: &TokenSpec, secret: &[u8], issuer: &str, audience: &str) -> anyhow::Result<String> {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: spec.sub.clone(),
        name: spec.name.clone(),
        tid: spec.tenant.clone(),
        roles: spec.roles.iter().map(|r| r.as_claim().to_string()).collect(),
        svc: spec.svc.clone(),
        exp: now + spec.ttl_secs,
        nbf: Some(now.min(now + spec.ttl_secs) - 1),
        iat: Some(now),
        iss: issuer.to_string(),
        aud: audience.to_string(),
    };
    Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(roles: &[Role]) -> Caller {
        Caller {
            sub: "a@x".into(),
            name: "a".into(),
            tenant_id: "t".into(),
            roles: roles.to_vec(),
            svc: None,
            expires_at: 0,
        }
    }

    #[test]
    fn roles_are_cumulative_and_ingestor_apart() {
        let admin = caller(&[Role::Admin]);
        assert!(admin.has(Role::Reader) && admin.has(Role::Responder) && admin.has(Role::Ingestor));
        let ingestor = caller(&[Role::Ingestor]);
        assert!(!ingestor.has(Role::Reader));
        assert!(ingestor.has(Role::Ingestor));
        let analyst = caller(&[Role::Analyst]);
        assert!(analyst.has(Role::Reader) && !analyst.has(Role::Responder) && !analyst.has(Role::Ingestor));
    }

    #[test]
    fn a_real_token_verifies_and_a_wrong_secret_does_not() {
        let spec = TokenSpec {
            tenant: "contoso".into(),
            sub: "alice@contoso.com".into(),
            name: Some("Alice".into()),
            roles: vec![Role::Analyst],
            svc: None,
            ttl_secs: 600,
        };
        let token = mint_hs256(&spec, b"secret", "parapet", "parapet").expect("mint");
        let c = JwtVerifier::hs256(b"secret", "parapet", "parapet").verify(&token).expect("verify");
        assert_eq!(c.tenant_id, "contoso");
        assert_eq!(c.roles, vec![Role::Analyst]);
        assert!(JwtVerifier::hs256(b"other", "parapet", "parapet").verify(&token).is_err());
        assert!(JwtVerifier::hs256(b"secret", "parapet", "elsewhere").verify(&token).is_err());
    }
}
