//! Secrets at rest (a mail server's master password): sealed with XChaCha20-Poly1305 under the key from
//! `PARAPET_SECRET_KEY`, a fresh random nonce per seal stored in front of the ciphertext, and the
//! tenant id as associated data, so a sealed value copied to another tenant's row does not open.

use crate::error::AppError;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const NONCE_LEN: usize = 24;

/// The key secrets are sealed with. Never printed.
#[derive(Clone)]
pub struct SecretKey(XChaCha20Poly1305);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    /// A key from 32 bytes given as base64 (standard or URL-safe, padded or not) or as 64 hex digits.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(t).map_err(|_| "not hex".to_string())?
        } else {
            let engines = [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::STANDARD_NO_PAD,
                base64::engine::general_purpose::URL_SAFE,
                base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            engines.iter().find_map(|e| e.decode(t).ok()).ok_or("neither 64 hex digits nor base64")?
        };
        Self::from_bytes(&bytes)
    }

    /// A key from exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() != 32 {
            return Err(format!("a secret key is 32 bytes, this one is {}", bytes.len()));
        }
        XChaCha20Poly1305::new_from_slice(bytes).map(Self).map_err(|_| "not a key".to_string())
    }

    /// Seals `plain` for `tenant_id`: nonce followed by ciphertext and tag.
    pub fn seal(&self, tenant_id: &str, plain: &str) -> Result<Vec<u8>, AppError> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = XNonce::from(nonce_bytes);
        let sealed = self
            .0
            .encrypt(&nonce, Payload { msg: plain.as_bytes(), aad: tenant_id.as_bytes() })
            .map_err(|_| AppError::Internal("sealing a secret failed".into()))?;
        let mut out = nonce_bytes.to_vec();
        out.extend(sealed);
        Ok(out)
    }

    /// Opens what [`SecretKey::seal`] sealed for `tenant_id`; an error when the key or tenant differ
    /// or the value was altered.
    pub fn open(&self, tenant_id: &str, sealed: &[u8]) -> Result<String, AppError> {
        if sealed.len() < NONCE_LEN {
            return Err(AppError::Internal("a sealed secret is too short".into()));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] =
            nonce.try_into().map_err(|_| AppError::Internal("a sealed secret is too short".into()))?;
        let plain = self
            .0
            .decrypt(&XNonce::from(nonce), Payload { msg: body, aad: tenant_id.as_bytes() })
            .map_err(|_| AppError::Internal("a sealed secret does not open with this key".into()))?;
        String::from_utf8(plain).map_err(|_| AppError::Internal("a sealed secret is not text".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_tenant() {
        let k = SecretKey::from_bytes(&[7; 32]).expect("key");
        let sealed = k.seal("contoso", "hunter2").expect("seal");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"), "the plain text is not in the sealed bytes");
        assert_eq!(k.open("contoso", &sealed).expect("open"), "hunter2");
        assert!(k.open("fabrikam", &sealed).is_err(), "another tenant's row does not open it");
        let other = SecretKey::from_bytes(&[8; 32]).expect("key");
        assert!(other.open("contoso", &sealed).is_err());
        let mut altered = sealed.clone();
        if let Some(b) = altered.last_mut() {
            *b ^= 1;
        }
        assert!(k.open("contoso", &altered).is_err());
        assert_ne!(k.seal("contoso", "hunter2").expect("seal"), sealed, "a fresh nonce each time");
    }

    #[test]
    fn keys_parse_from_hex_or_base64_of_32_bytes() {
        assert!(SecretKey::parse(&"ab".repeat(32)).is_ok());
        let b64 = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        assert!(SecretKey::parse(&b64).is_ok());
        assert!(SecretKey::parse("short").is_err());
        assert!(SecretKey::parse(&base64::engine::general_purpose::STANDARD.encode([1u8; 16])).is_err());
        assert_eq!(
            format!("{:?}", SecretKey::parse(&"ab".repeat(32)).expect("key")),
            "SecretKey(<redacted>)"
        );
    }
}
