//! Lock ids: one stable 64-bit number per (tenant, kind, value), so every layer that locks the same
//! thing computes the same id. Ingestion locks its keys' and re-sent provider ids' rows of
//! `correlation_locks` by it; the outbox takes a tenant's event lock and retention its pruning lock by it.

use sha2::{Digest, Sha256};

/// The lock id of `value` of `kind` within a tenant: batches that share a key serialise on it.
pub fn lock_id(tenant_id: &str, kind: &str, value: &str) -> i64 {
    let mut h = Sha256::new();
    h.update(tenant_id.as_bytes());
    h.update([0x1f]);
    h.update(kind.as_bytes());
    h.update([0x1f]);
    h.update(value.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_ids_differ_by_tenant() {
        assert_ne!(lock_id("a", "URL", "x"), lock_id("b", "URL", "x"));
        assert_eq!(lock_id("a", "URL", "x"), lock_id("a", "URL", "x"));
    }
}
