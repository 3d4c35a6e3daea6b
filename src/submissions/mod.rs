//! Submissions: an analyst reports an e-mail copy, a URL or a file as wrongly blocked (`NOT_JUNK`) or
//! wrongly allowed (`SPAM PHISHING MALWARE`); Parapet evaluates it at once from the tenant's own data
//! ([`result`]) and, for an admin who asks, creates the matching allow/block entry in the same
//! transaction ([`service`]).

pub mod result;
pub mod service;
