//! The matcher ingestion calls for a batch of e-mail: the tenant's unexpired entries that match any of
//! the batch's values, in one statement ([`active_matches`]); then, per message copy,
//! [`super::verdict_for`]; then [`touch`] on the entries used. Expiry is judged at the `now` given, so an
//! expired entry stops applying at once, with no background job.

use super::keys::MatchKeys;
use super::verdict::CopyFacts;
use crate::db::queries::allow_block as q;
use crate::db::Conn;
use crate::error::AppResult;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use crate::db::queries::allow_block::ActiveEntry;

/// The values of a batch of e-mail that entries are looked up by. URLs are normalised as ingestion
/// normalises them (`ingest::validate::normalise_url`); addresses, domains and hashes are compared
/// lower-cased; IPs that do not parse are ignored. Domains of the addresses and hosts of the URLs are
/// looked up too, whether or not they are listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    /// Sender addresses (envelope sender, header from).
    pub sender_addresses: Vec<String>,
    /// Sender domains.
    pub sender_domains: Vec<String>,
    /// URLs in the messages.
    pub urls: Vec<String>,
    /// Hosts of those URLs.
    pub url_hosts: Vec<String>,
    /// SHA-256s of the attachments.
    pub file_sha256s: Vec<String>,
    /// Addresses of the sending servers.
    pub sender_ips: Vec<String>,
}

impl Probe {
    /// The values of these message copies.
    pub fn from_copies<'a>(copies: impl IntoIterator<Item = &'a CopyFacts>) -> Probe {
        let mut p = Probe::default();
        for c in copies {
            p.sender_addresses.extend(c.envelope_sender.iter().chain(&c.header_from).cloned());
            p.sender_domains.extend(c.sender_domains.iter().cloned());
            p.urls.extend(c.urls.iter().cloned());
            p.url_hosts.extend(c.url_hosts.iter().cloned());
            p.file_sha256s.extend(c.attachment_sha256s.iter().cloned());
            p.sender_ips.extend(c.sender_ip.iter().cloned());
        }
        p
    }

    /// Every stored value these facts match (see `keys`).
    pub fn keys(&self) -> MatchKeys {
        let mut k = MatchKeys::default();
        self.sender_addresses.iter().for_each(|a| k.add_address(a));
        self.sender_domains.iter().for_each(|d| k.add_domain(d));
        self.urls.iter().for_each(|u| k.add_url(u));
        self.url_hosts.iter().for_each(|h| k.add_host(h));
        self.file_sha256s.iter().for_each(|h| k.add_file_hash(h));
        self.sender_ips.iter().for_each(|ip| k.add_ip(ip));
        k
    }
}

/// The tenant's entries unexpired at `now` that match any value of `probe`, in id order: one SQL
/// statement whose arrays grow with the batch (and are bounded by it), never a statement per value.
pub async fn active_matches(
    conn: &mut Conn,
    tenant_id: &str,
    probe: &Probe,
    now: DateTime<Utc>,
) -> AppResult<Vec<ActiveEntry>> {
    let keys = probe.keys();
    if keys.is_empty() {
        return Ok(vec![]);
    }
    let ips: Vec<String> = keys.ips.iter().map(ToString::to_string).collect();
    let rows = q::active_matching(
        conn,
        tenant_id,
        now,
        &strs(&keys.sender),
        &strs(&keys.url),
        &strs(&keys.file_hash),
        &ips,
    )
    .await?;
    Ok(rows)
}

fn strs(s: &std::collections::BTreeSet<String>) -> Vec<&str> {
    s.iter().map(String::as_str).collect()
}

/// Records that the entries `ids` were used at `at` (what `lastUsedAt` shows): one statement; the date
/// only moves forward, and an ALLOW following the 45-days-after-last-use rule is extended from it.
/// Returns how many entries moved. It locks the rows it changes (in id order, so concurrent batches
/// wait rather than deadlock) until the transaction ends: run it late in a batch's transaction, or in
/// a short one of its own.
pub async fn touch(conn: &mut Conn, tenant_id: &str, ids: &[Uuid], at: DateTime<Utc>) -> AppResult<usize> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    Ok(q::touch(conn, tenant_id, &ids, at).await?)
}
