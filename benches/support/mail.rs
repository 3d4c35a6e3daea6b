//! Realistic mail-flow records for the mail benchmarks (`ingestEmails`), deterministic for a seed.
//!
//! The shape of the data:
//! - 2,000 sender domains, skewed as real mail is: a domain's share falls with its rank (the chance of
//!   a domain of rank below k is sqrt(k / 2,000)), so the top 20 domains send about a tenth of the mail
//!   and the busiest about 2 %. The From: header is `<name>@<domain>`, the envelope sender
//!   `bounces+<n>@mail.<domain>` (a subdomain, as bulk senders use), the sending IP one of 4 per domain.
//! - 20,000 recipients (`user<r>@contoso.example`, one in ten at `contoso-eu.example`), uniform; a
//!   message goes to 1 to 3 of them (1.67 on average), one copy each.
//! - 0 to 5 URLs (25 % none, 25 % one, 20 % two, 15 % three, 10 % four, 5 % five): 70 % on the sender's
//!   own hosts (`www.` or `click.<domain>`), 20 % on one of 50 shared hosts (link shorteners, CDNs),
//!   10 % on a host seen once.
//! - 0 to 2 attachments (70 % none, 20 % one, 10 % two): 40 % the sender's logo (one hash per domain),
//!   the rest documents with a hash of their own.
//! - 1 % of copies belong to campaigns of about 200 copies: each campaign has its own subject, URL host,
//!   attachment (hash and name) and cluster id, 1 to 10 recipients per message, is sent from 5 of the
//!   sender domains within 2 hours, is PHISH (or MALWARE for one in three), and is mostly blocked; those
//!   delivered were moved to quarantine afterwards (a ZAP in the timeline).
//! - Outside campaigns, threat types on a few %: SPAM 3 % (delivered to junk), PHISH 0.5 %, MALWARE
//!   0.2 % (blocked), each with its detection technologies; the rest is clean and delivered.
//! - Receive times uniform over the last 29.5 days (a campaign's within its 2 hours), in random order;
//!   or, from [`MailGen::ordered`], rising through the 29.5 days as the records are generated (mail
//!   arriving as it is received, so the table's physical order follows time as in a running
//!   deployment), each campaign then taking its own slice of the month.
//!
//! `MailGen::batch` returns the next records; `MailGen::sample` keeps a uniform sample of the copies
//! generated (reservoir sampling), from which the Explorer benchmark draws its filter values, so a value
//! is picked as often as it occurs.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Sender domains.
pub const SENDER_DOMAINS: usize = 2_000;
/// Recipients.
pub const RECIPIENTS: usize = 20_000;
/// Copies per campaign, on average.
pub const CAMPAIGN_COPIES: usize = 200;
/// Shared URL hosts.
const SHARED_HOSTS: usize = 50;

/// splitmix64: small, fast, and the same on every machine.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

fn hex_sha256(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// The name of sender domain `d`.
pub fn sender_domain(d: usize) -> String {
    const TLDS: [&str; 6] = ["com", "net", "org", "io", "co.uk", "de"];
    const WORDS: [&str; 10] =
        ["mail", "news", "shop", "bank", "cloud", "travel", "media", "health", "energy", "tech"];
    format!("{}{}-{d}.{}", WORDS[d % WORDS.len()], d / WORDS.len(), TLDS[d % TLDS.len()])
}

/// The address of recipient `r`.
pub fn recipient(r: usize) -> String {
    if r % 10 == 9 {
        format!("user{r}@contoso-eu.example")
    } else {
        format!("user{r}@contoso.example")
    }
}

/// A campaign: what its copies share.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// Subject.
    pub subject: String,
    /// URL host.
    pub url_host: String,
    /// Attachment hash.
    pub sha256: String,
    /// Attachment name.
    pub attachment_name: String,
    /// Sender domains (indexes).
    pub domains: [usize; 5],
    /// Start of its 2 hours.
    pub start: DateTime<Utc>,
    /// Whether it carries malware rather than phish.
    pub malware: bool,
}

/// What the Explorer benchmark needs to know of a generated copy.
#[derive(Debug, Clone)]
pub struct CopyFacts {
    /// Sender domain (From: header).
    pub sender_domain: String,
    /// Recipient.
    pub recipient: String,
    /// URL hosts.
    pub url_hosts: Vec<String>,
    /// Attachment hashes.
    pub sha256s: Vec<String>,
    /// Receive time.
    pub received_at: DateTime<Utc>,
    /// Its campaign, if any.
    pub campaign: Option<usize>,
}

/// The generator of one data set.
pub struct MailGen {
    rng: Rng,
    seed: u64,
    now: DateTime<Utc>,
    /// The campaigns, fixed up front.
    pub campaigns: Vec<Campaign>,
    /// Copies generated so far.
    pub generated: usize,
    messages: u64,
    pending: Vec<(Value, CopyFacts)>,
    /// A uniform sample of the copies generated so far.
    pub sample: Vec<CopyFacts>,
    sample_size: usize,
    /// Messages expected in all (in time order), else `None` (random times).
    ordered: Option<f64>,
}

/// Copies per message outside campaigns (1, 1, 1, 2, 2 or 3 recipients) and in them (1 to 10).
const COPIES_PER_MESSAGE: f64 = 10.0 / 6.0;
const CAMPAIGN_COPIES_PER_MESSAGE: f64 = 5.5;
/// The chance that a message belongs to a campaign, so that 1 % of copies do.
const CAMPAIGN_MESSAGE_SHARE: f64 =
    0.01 * COPIES_PER_MESSAGE / (0.99 * CAMPAIGN_COPIES_PER_MESSAGE + 0.01 * COPIES_PER_MESSAGE);

/// Phishing subjects campaigns draw from (each adds its own reference).
const CAMPAIGN_SUBJECTS: [&str; 8] = [
    "Invoice {ref} overdue - payment required today",
    "Action required: your mailbox will be suspended ({ref})",
    "Your package could not be delivered - reschedule {ref}",
    "Unusual sign-in activity detected on your account {ref}",
    "Shared document: Q3 payroll adjustments {ref}",
    "Voicemail received from +1 (555) {ref}",
    "Your password expires today - keep current password {ref}",
    "Wire transfer confirmation {ref}",
];

/// Ordinary subjects (numbers vary per message).
const SUBJECTS: [&str; 16] = [
    "Your order #{n} has shipped",
    "Invoice {n} from {org}",
    "Weekly digest for {org}",
    "Meeting notes: project {n}",
    "Re: quarterly planning {n}",
    "Your receipt from {org} #{n}",
    "Password reset requested",
    "Newsletter: what's new at {org}",
    "Reminder: appointment on day {n}",
    "Your statement is ready",
    "Flight confirmation {n}",
    "Welcome to {org}",
    "Re: Re: contract draft v{n}",
    "Security alert for your {org} account",
    "Special offer: {n} % off this week",
    "Payment received - thank you",
];

const DETECTIONS_SPAM: [&str; 3] = ["Advanced filter", "Bulk", "General filter"];
const DETECTIONS_PHISH: [&str; 4] = [
    "URL detonation reputation",
    "Impersonation domain",
    "Spoof DMARC",
    "Mailbox intelligence impersonation",
];
const DETECTIONS_MALWARE: [&str; 3] = ["File detonation", "Anti-malware engine", "File reputation"];

impl MailGen {
    /// A data set of about `copies` copies (which sets how many campaigns there are), seeded with
    /// `seed`, received over the 29.5 days before `now`; keeps a sample of `sample_size` copies.
    pub fn new(seed: u64, copies: usize, now: DateTime<Utc>, sample_size: usize) -> MailGen {
        let mut rng = Rng::new(seed);
        let n_campaigns = (copies / 100 / CAMPAIGN_COPIES).max(1);
        let campaigns = (0..n_campaigns)
            .map(|c| {
                let code = format!("{:X}", rng.next_u64() % 0xFF_FFFF);
                let subject = CAMPAIGN_SUBJECTS[c % CAMPAIGN_SUBJECTS.len()].replace("{ref}", &code);
                let mut domains = [0; 5];
                for d in &mut domains {
                    *d = rng.below(SENDER_DOMAINS);
                }
                Campaign {
                    subject,
                    url_host: format!("secure-login-{}.verify{}-{seed}.example", code.to_lowercase(), c),
                    sha256: hex_sha256(&["campaign", &seed.to_string(), &c.to_string()]),
                    attachment_name: if c % 3 == 0 {
                        format!("Payment_Advice_{code}.zip")
                    } else {
                        format!("Remittance_{code}.htm")
                    },
                    domains,
                    start: now - window(&mut rng),
                    malware: c % 3 == 0,
                }
            })
            .collect();
        MailGen {
            rng,
            seed,
            now,
            campaigns,
            generated: 0,
            messages: 0,
            pending: vec![],
            sample: Vec::with_capacity(sample_size),
            sample_size,
            ordered: None,
        }
    }

    /// Like [`MailGen::new`], but receive times rise as the records are generated.
    pub fn ordered(seed: u64, copies: usize, now: DateTime<Utc>, sample_size: usize) -> MailGen {
        let mut g = MailGen::new(seed, copies, now, sample_size);
        let per_message = CAMPAIGN_MESSAGE_SHARE * CAMPAIGN_COPIES_PER_MESSAGE
            + (1.0 - CAMPAIGN_MESSAGE_SHARE) * COPIES_PER_MESSAGE;
        g.ordered = Some(copies as f64 / per_message);
        g
    }

    /// The next `n` records.
    pub fn batch(&mut self, n: usize) -> Vec<Value> {
        while self.pending.len() < n {
            self.message();
        }
        let rest = self.pending.split_off(n);
        let out = std::mem::replace(&mut self.pending, rest);
        out.into_iter()
            .map(|(record, facts)| {
                self.generated += 1;
                if self.sample.len() < self.sample_size {
                    self.sample.push(facts);
                } else {
                    let j = self.rng.below(self.generated);
                    if j < self.sample_size {
                        self.sample[j] = facts;
                    }
                }
                record
            })
            .collect()
    }

    /// Generates one message: its copies go to `pending`.
    fn message(&mut self) {
        // Where in the month this message falls, when in time order.
        let frac = self.ordered.map(|m| (self.messages as f64 / m).min(1.0));
        let n_campaigns = self.campaigns.len();
        let campaign = if self.rng.chance(CAMPAIGN_MESSAGE_SHARE) {
            Some(match frac {
                Some(f) => ((f * n_campaigns as f64) as usize).min(n_campaigns - 1),
                None => self.rng.below(n_campaigns),
            })
        } else {
            None
        };
        self.messages += 1;
        let rng = &mut self.rng;
        let nmid = uuid::Uuid::from_u64_pair(
            self.seed.wrapping_mul(0x1000_0000_01b3) ^ rng.next_u64(),
            self.messages,
        )
        .to_string();
        let c = campaign.map(|c| &self.campaigns[c]);
        let d = match c {
            Some(c) => c.domains[rng.below(5)],
            None => ((rng.unit().powi(2)) * SENDER_DOMAINS as f64) as usize,
        };
        let domain = sender_domain(d);
        let received = match (frac, c) {
            (Some(f), _) => {
                let jitter = Duration::seconds(rng.below(600) as i64 - 300);
                (self.now - Duration::seconds(((1.0 - f) * 29.5 * 86_400.0) as i64) + jitter)
                    .min(self.now - Duration::minutes(1))
            }
            (None, Some(c)) => {
                (c.start + Duration::seconds(rng.below(7200) as i64)).min(self.now - Duration::minutes(1))
            }
            (None, None) => self.now - Duration::minutes(1) - window(rng),
        };
        let org = domain.split(['-', '.']).next().unwrap_or("org").to_string();
        let subject = match c {
            Some(c) => c.subject.clone(),
            None => SUBJECTS[rng.below(SUBJECTS.len())]
                .replace("{n}", &(rng.below(100_000)).to_string())
                .replace("{org}", &org),
        };
        let mut urls: Vec<String> = vec![];
        let mut hosts: Vec<String> = vec![];
        if let Some(c) = c {
            urls.push(format!("https://{}/auth/verify?u={}", c.url_host, rng.below(1_000_000)));
            hosts.push(c.url_host.clone());
        }
        let n_urls = match rng.below(20) {
            0..=4 => 0,
            5..=9 => 1,
            10..=13 => 2,
            14..=16 => 3,
            17..=18 => 4,
            _ => 5,
        };
        for _ in urls.len()..n_urls {
            let roll = rng.below(10);
            let host = if roll < 7 {
                if rng.chance(0.5) {
                    format!("www.{domain}")
                } else {
                    format!("click.{domain}")
                }
            } else if roll < 9 {
                format!("l{}.links-cdn.example", rng.below(SHARED_HOSTS))
            } else {
                format!("h{:x}.web.example", rng.next_u64() & 0xffff_ffff_ffff)
            };
            urls.push(format!("https://{host}/p/{}/{}", rng.below(10_000), rng.next_u64() % 1_000_000_007));
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        let mut attachments: Vec<Value> = vec![];
        let mut sha256s: Vec<String> = vec![];
        if let Some(c) = c {
            attachments.push(json!({ "name": c.attachment_name, "sha256": c.sha256, "size": 48_213 }));
            sha256s.push(c.sha256.clone());
        } else {
            let n_att = match rng.below(10) {
                0..=6 => 0,
                7..=8 => 1,
                _ => 2,
            };
            for k in 0..n_att {
                let (name, hash) = if rng.chance(0.4) {
                    ("logo.png".to_string(), hex_sha256(&["logo", &domain]))
                } else {
                    (format!("Document_{}_{k}.pdf", self.messages), hex_sha256(&[&nmid, &k.to_string()]))
                };
                attachments
                    .push(json!({ "name": name, "sha256": hash, "size": 10_000 + rng.below(2_000_000) }));
                sha256s.push(hash);
            }
        }
        // Verdicts.
        let (threats, techs, action, latest, confidence): (
            Vec<&str>,
            Vec<&str>,
            &str,
            Option<&str>,
            Option<&str>,
        ) = if let Some(c) = c {
            let blocked = rng.chance(0.7);
            let threats = if c.malware { vec!["MALWARE", "PHISH"] } else { vec!["PHISH"] };
            let techs = if c.malware {
                vec!["File detonation", "Campaign"]
            } else {
                vec!["URL detonation reputation", "Campaign"]
            };
            if blocked {
                (threats, techs, "BLOCKED", None, Some("HIGH"))
            } else {
                (threats, techs, "DELIVERED", Some("QUARANTINE"), Some("HIGH"))
            }
        } else {
            let roll = rng.unit();
            if roll < 0.03 {
                let t = DETECTIONS_SPAM[rng.below(DETECTIONS_SPAM.len())];
                (vec!["SPAM"], vec![t], "DELIVERED_TO_JUNK", None, None)
            } else if roll < 0.035 {
                let t = DETECTIONS_PHISH[rng.below(DETECTIONS_PHISH.len())];
                let conf = if rng.chance(0.5) { "HIGH" } else { "NORMAL" };
                (
                    vec!["PHISH"],
                    vec![t],
                    if rng.chance(0.5) { "BLOCKED" } else { "DELIVERED_TO_JUNK" },
                    None,
                    Some(conf),
                )
            } else if roll < 0.037 {
                let t = DETECTIONS_MALWARE[rng.below(DETECTIONS_MALWARE.len())];
                (vec!["MALWARE"], vec![t], "BLOCKED", None, None)
            } else {
                (vec![], vec![], "DELIVERED", None, None)
            }
        };
        let n_rcpt = match c {
            Some(_) => 1 + rng.below(10),
            None => [1, 1, 1, 2, 2, 3][rng.below(6)],
        };
        let ip = format!("{}.{}.{}.{}", 11 + d % 200, (d / 200) * 13 % 250, rng.below(4) + 1, 10 + d % 240);
        let sender_name = format!("{} {}", org, ["Team", "Billing", "Support", "News"][d % 4]);
        let header_from = format!("{}@{domain}", ["noreply", "billing", "support", "news"][d % 4]);
        let envelope = format!("bounces+{}@mail.{domain}", rng.below(1_000_000));
        let mut seen: Vec<usize> = vec![];
        for _ in 0..n_rcpt {
            let r = rng.below(RECIPIENTS);
            if seen.contains(&r) {
                continue;
            }
            seen.push(r);
            let to = recipient(r);
            let mut rec = json!({
                "networkMessageId": nmid,
                "internetMessageId": format!("<{nmid}@{domain}>"),
                "recipient": to,
                "envelopeSender": envelope,
                "headerFrom": header_from,
                "senderDisplayName": sender_name,
                "senderIp": ip,
                "subject": subject,
                "receivedAt": received.to_rfc3339_opts(SecondsFormat::Millis, true),
                "deliveryAction": action,
                "threatTypes": threats,
                "detectionTechnologies": techs,
                "urls": urls,
                "attachments": attachments,
            });
            if let Some(l) = latest {
                rec["latestDeliveryLocation"] = json!(l);
                rec["eventAt"] = json!((received + Duration::minutes(30))
                    .min(self.now)
                    .to_rfc3339_opts(SecondsFormat::Millis, true));
                rec["eventType"] = json!("ZAP");
            }
            if let Some(p) = confidence {
                rec["phishConfidence"] = json!(p);
            }
            if let Some(cn) = campaign {
                rec["clusterId"] = json!(format!("cluster-{}-{cn}", self.seed));
            }
            let facts = CopyFacts {
                sender_domain: domain.clone(),
                recipient: to,
                url_hosts: hosts.clone(),
                sha256s: sha256s.clone(),
                received_at: received,
                campaign,
            };
            self.pending.push((rec, facts));
        }
    }
}

/// A random age within the 29.5-day window.
fn window(rng: &mut Rng) -> Duration {
    Duration::seconds((rng.unit() * 29.5 * 86_400.0) as i64)
}
