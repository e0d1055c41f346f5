//! Notification channels: where an org's own people are told about its
//! quota (a signed webhook, a Slack or a Discord incoming webhook), which
//! events each takes, and which addresses a channel may point at. Pure: the
//! addresses a host resolves to are given, never looked up here.
//!
//! A channel's URL is the customer's to choose, so it is treated as hostile:
//! `https` only, and never an address inside a network (loopback, private,
//! link-local, the cloud's metadata service, …). The same check runs when
//! the channel is created and again before every delivery, on the addresses
//! the host resolves to then (DNS can change), and the delivery connects to
//! an address that passed it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::events::EventKind;

/// Most channels one org keeps.
pub const MAX_CHANNELS: usize = 10;
/// Longest accepted URL, in bytes.
pub const MAX_URL: usize = 2048;

const ID_PREFIX: &str = "chn_";
const SECRET_PREFIX: &str = "whsec_";

/// The events a channel can take. `QuotaReset` and `PlanChanged` are the
/// operator's business, not the customer's: their effect reaches channels as
/// `QuotaRecovered`.
pub const CHANNEL_EVENTS: [EventKind; 8] = [
    EventKind::QuotaThresholdCrossed,
    EventKind::QuotaExceeded,
    EventKind::QuotaRecovered,
    EventKind::TrialExpired,
    EventKind::GrantAdded,
    EventKind::GrantRevoked,
    EventKind::GrantExpired,
    EventKind::UsagePeriodClosed,
];

/// What a channel is, which decides what it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelType {
    /// The event's JSON, signed (Standard Webhooks).
    Webhook,
    /// A Slack incoming webhook: a message in the org's language.
    Slack,
    /// A Discord webhook: the same message.
    Discord,
}

impl ChannelType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelType::Webhook => "webhook",
            ChannelType::Slack => "slack",
            ChannelType::Discord => "discord",
        }
    }

    pub fn parse(s: &str) -> Option<ChannelType> {
        [ChannelType::Webhook, ChannelType::Slack, ChannelType::Discord].into_iter().find(|t| t.as_str() == s)
    }
}

/// A channel as it is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub id: String,
    pub kind: ChannelType,
    pub url: String,
    pub events: Vec<EventKind>,
    /// The signing secret (`whsec_…`); webhooks only.
    pub secret: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// How much of a channel an answer shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// To whoever just created it: the URL they sent, and the signing secret.
    ToItsCreator,
    /// Everywhere else (lists, removals, the audit log): the URL masked, no
    /// secret. A Slack or Discord URL is itself a credential (whoever has
    /// it can post to the channel), and a webhook's may carry a token.
    Masked,
}

impl Channel {
    /// A new channel for `request`, with a new id and, for a webhook, a new
    /// secret; `None` when the system has no randomness to make a secret
    /// with (no secret is made from anything weaker).
    pub fn new(request: ChannelRequest, created_by: &str, now: DateTime<Utc>) -> Option<Channel> {
        let secret = match request.kind {
            ChannelType::Webhook => Some(new_secret()?),
            ChannelType::Slack | ChannelType::Discord => None,
        };
        Some(Channel {
            id: format!("{ID_PREFIX}{}", super::random_hex(12)),
            kind: request.kind,
            url: request.url,
            events: request.events,
            secret,
            created_by: created_by.to_string(),
            created_at: now,
        })
    }

    /// Whether `id` is shaped as a channel id (others are 404 without a read).
    pub fn valid_id(id: &str) -> bool {
        id.strip_prefix(ID_PREFIX).is_some_and(|hex| hex.len() == 24 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    pub fn takes(&self, kind: EventKind) -> bool {
        self.events.contains(&kind)
    }

    /// The channel as the API shows it.
    pub fn to_json(&self, shown: Shown) -> serde_json::Value {
        let url = match shown {
            Shown::ToItsCreator => self.url.clone(),
            Shown::Masked => masked(&self.url),
        };
        let mut json = serde_json::json!({
            "id": self.id,
            "type": self.kind.as_str(),
            "url": url,
            "events": self.events.iter().map(|e| e.detail_type()).collect::<Vec<_>>(),
            "createdAt": super::rfc3339(self.created_at),
        });
        if shown == Shown::ToItsCreator
            && let Some(secret) = &self.secret
        {
            json["secret"] = secret.clone().into();
        }
        json
    }
}

/// A URL with its path and query hidden but for their last 4 characters,
/// and those only when at least 16 more stay hidden:
/// `https://hooks.slack.com/…a1B2`; enough to tell channels apart, not to
/// post to one.
pub fn masked(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else { return "…".to_string() };
    let origin = parsed.origin().ascii_serialization();
    let rest = &parsed[url::Position::BeforePath..];
    let tail: String = rest.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    if rest.chars().count() < 20 { format!("{origin}/…") } else { format!("{origin}/…{tail}") }
}

/// A new signing secret: `whsec_` and 32 bytes from the system's secure
/// random source in base64, as Standard Webhooks libraries take it.
fn new_secret() -> Option<String> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).ok()?;
    Some(format!("{SECRET_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
}

/// The key a secret stands for: its base64 part, decoded.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let b64 = secret.strip_prefix(SECRET_PREFIX)?;
    base64::engine::general_purpose::STANDARD.decode(b64).ok().filter(|k| !k.is_empty())
}

/// `POST /v1/orgs/{orgId}/channels`, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelBody {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

/// The codes a channel is refused with, besides `INVALID_REQUEST`.
pub const REFUSAL_CODES: [&str; 6] = [
    "UNKNOWN_CHANNEL_TYPE",
    "UNKNOWN_EVENT",
    "CHANNEL_URL_INVALID",
    "CHANNEL_URL_NOT_HTTPS",
    "CHANNEL_URL_FORBIDDEN",
    "CHANNEL_URL_UNRESOLVED",
];

/// Why a channel was refused: a stable code and what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub code: &'static str,
    pub message: String,
}

fn refused(code: &'static str, message: impl Into<String>) -> Refused {
    Refused { code, message: message.into() }
}

/// A checked request for a channel. Its host's addresses are checked apart
/// ([`Reach::check_addresses`]), once resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRequest {
    pub kind: ChannelType,
    pub url: String,
    pub events: Vec<EventKind>,
}

impl ChannelRequest {
    pub fn parse(body: ChannelBody, reach: Reach) -> Result<ChannelRequest, Refused> {
        let kind =
            body.kind.ok_or_else(|| refused("INVALID_REQUEST", "type is required: webhook, slack or discord"))?;
        let kind = ChannelType::parse(&kind).ok_or_else(|| {
            refused("UNKNOWN_CHANNEL_TYPE", format!("unknown channel type {kind:?}: webhook, slack or discord"))
        })?;
        let url = body.url.ok_or_else(|| refused("INVALID_REQUEST", "url is required"))?;
        reach.check_url(&url)?;
        let names = body.events.ok_or_else(|| refused("INVALID_REQUEST", "events is required: at least one event"))?;
        if names.is_empty() {
            return Err(refused("INVALID_REQUEST", "events must name at least one event"));
        }
        let mut events = Vec::new();
        for name in &names {
            let kind = EventKind::parse(name).filter(|k| CHANNEL_EVENTS.contains(k)).ok_or_else(|| {
                let known: Vec<&str> = CHANNEL_EVENTS.iter().map(|k| k.detail_type()).collect();
                refused("UNKNOWN_EVENT", format!("unknown event {name:?}; a channel takes {}", known.join(", ")))
            })?;
            if !events.contains(&kind) {
                events.push(kind);
            }
        }
        Ok(ChannelRequest { kind, url, events })
    }
}

/// Which addresses channels may reach. In AWS, public ones only, over
/// `https`. Locally (`QUOTA_ALLOW_PRIVATE_WEBHOOKS=1`), loopback too, over
/// `http` as well, so that a receiver on the developer's machine works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reach {
    pub allow_loopback: bool,
}

/// A URL's host and port, once the URL has passed [`Reach::check_url`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: Host,
    pub port: u16,
    pub https: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Reach {
    pub const PUBLIC: Reach = Reach { allow_loopback: false };
    pub const LOCAL: Reach = Reach { allow_loopback: true };

    /// The URL's shape, and its host when written as an address: 400 codes
    /// `CHANNEL_URL_INVALID`, `CHANNEL_URL_NOT_HTTPS`, `CHANNEL_URL_FORBIDDEN`.
    pub fn check_url(self, raw: &str) -> Result<Target, Refused> {
        let invalid = |why: &str| refused("CHANNEL_URL_INVALID", format!("url {why}"));
        if raw.len() > MAX_URL {
            return Err(invalid(&format!("is longer than {MAX_URL} bytes")));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("contains spaces or control characters"));
        }
        let url = url::Url::parse(raw).map_err(|e| invalid(&format!("is not a URL: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("must not carry a user name or password"));
        }
        if url.fragment().is_some() {
            return Err(invalid("must not have a #fragment"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => Host::Name(d.trim_end_matches('.').to_ascii_lowercase()),
            Some(url::Host::Ipv4(ip)) => Host::Ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Host::Ip(IpAddr::V6(ip)),
            None => return Err(invalid("has no host")),
        };
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(refused("CHANNEL_URL_NOT_HTTPS", format!("url must be https, not {other}"))),
        };
        let port = url.port_or_known_default().unwrap_or(if https { 443 } else { 80 });
        if let Host::Name(name) = &host {
            if name.is_empty() || !name.contains('.') && name != "localhost" {
                return Err(invalid("must name a host by its full domain name"));
            }
            if name == "localhost" || name.ends_with(".localhost") {
                self.check_address(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
            }
        }
        if let Host::Ip(ip) = &host {
            self.check_address(*ip)?;
        }
        let target = Target { host, port, https };
        if !https && !self.plain_http_ok(&target) {
            return Err(refused("CHANNEL_URL_NOT_HTTPS", "url must be https"));
        }
        Ok(target)
    }

    /// Plain `http` only to loopback, and only when loopback is allowed.
    fn plain_http_ok(self, target: &Target) -> bool {
        self.allow_loopback
            && match &target.host {
                Host::Ip(ip) => ip.is_loopback(),
                Host::Name(name) => name == "localhost",
            }
    }

    /// `Ok` when `ip` may be reached; the refusal names what it is.
    pub fn check_address(self, ip: IpAddr) -> Result<(), Refused> {
        match forbidden(ip) {
            Some("loopback") if self.allow_loopback => Ok(()),
            Some(what) => Err(refused(
                "CHANNEL_URL_FORBIDDEN",
                format!("url points at {ip}, a {what} address; a channel must reach a public address"),
            )),
            None => Ok(()),
        }
    }

    /// Every address a host resolved to must pass: one that does not means
    /// the name can lead inside a network. None at all is refused too.
    pub fn check_addresses(self, host: &str, ips: &[IpAddr]) -> Result<(), Refused> {
        if ips.is_empty() {
            return Err(refused("CHANNEL_URL_UNRESOLVED", format!("url's host {host} does not resolve")));
        }
        ips.iter().try_for_each(|ip| self.check_address(*ip))
    }
}

/// What kind of non-public address `ip` is, if it is one (IANA's special
/// purpose registries, and the cloud metadata services).
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], bits: u32) -> bool {
    let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const NETS: &[([u8; 4], u32, &str)] = &[
        ([169, 254, 169, 254], 32, "cloud metadata"),
        ([0, 0, 0, 0], 8, "\"this network\""),
        ([10, 0, 0, 0], 8, "private"),
        ([100, 64, 0, 0], 10, "shared (carrier-grade NAT)"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([169, 254, 0, 0], 16, "link-local"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 0, 0, 0], 24, "IETF protocol"),
        ([192, 0, 2, 0], 24, "documentation"),
        ([192, 88, 99, 0], 24, "6to4 relay"),
        ([192, 168, 0, 0], 16, "private"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved"),
    ];
    NETS.iter().find(|(net, bits, _)| in_v4(ip, *net, *bits)).map(|(_, _, what)| *what)
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], bits: u32) -> bool {
    let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip == Ipv6Addr::UNSPECIFIED {
        return Some("unspecified");
    }
    if ip == Ipv6Addr::LOCALHOST {
        return Some("loopback");
    }
    // Addresses that carry an IPv4 address, and lead to it: judged by it.
    let embedded = |ip: Ipv6Addr| {
        let o = ip.octets();
        Ipv4Addr::new(o[12], o[13], o[14], o[15])
    };
    if in_v6(ip, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96) || in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        return forbidden_v4(embedded(ip));
    }
    const NETS: &[([u16; 8], u32, &str)] = &[
        ([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128, "cloud metadata"),
        ([0, 0, 0, 0, 0, 0, 0, 0], 96, "IPv4-compatible"),
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, "local-use translation"),
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "discard-only"),
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, "IETF protocol"),
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, "documentation"),
        ([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, "6to4"),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "private (unique local)"),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local"),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "site-local"),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast"),
    ];
    NETS.iter().find(|(net, bits, _)| in_v6(ip, *net, *bits)).map(|(_, _, what)| *what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_address_inside_a_network_is_named() {
        for (addr, what) in [
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("10.0.0.1", "private"),
            ("10.255.255.255", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.170.2", "link-local"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("0.0.0.0", "\"this network\""),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("192.0.2.10", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fc00::1", "private (unique local)"),
            ("fdff:ffff::1", "private (unique local)"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "cloud metadata"),
            ("::ffff:10.1.2.3", "private"),
            ("64:ff9b::a00:1", "private"),
            ("::7f00:1", "IPv4-compatible"),
            ("2002:7f00:1::", "6to4"),
            ("2001:db8::1", "documentation"),
        ] {
            assert_eq!(forbidden(ip(addr)), Some(what), "{addr}");
        }
        for public in [
            "93.184.215.14",
            "8.8.8.8",
            "172.32.0.1",
            "172.15.255.255",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(forbidden(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn loopback_is_allowed_only_locally_and_nothing_else_is() {
        assert!(Reach::PUBLIC.check_address(ip("127.0.0.1")).is_err());
        assert!(Reach::LOCAL.check_address(ip("127.0.0.1")).is_ok());
        assert!(Reach::LOCAL.check_address(ip("::1")).is_ok());
        for inside in ["10.0.0.1", "169.254.169.254", "192.168.0.1", "fd00:ec2::254", "::ffff:169.254.169.254"] {
            let err = Reach::LOCAL.check_address(ip(inside)).unwrap_err();
            assert_eq!(err.code, "CHANNEL_URL_FORBIDDEN", "{inside}");
        }
    }

    #[test]
    fn urls_are_https_to_a_public_host_and_written_plainly() {
        let ok = Reach::PUBLIC.check_url("https://hooks.slack.com/services/T0/B0/x").unwrap();
        assert_eq!((ok.host, ok.port, ok.https), (Host::Name("hooks.slack.com".into()), 443, true));
        let code = |reach: Reach, url: &str| reach.check_url(url).map(|_| "ok").unwrap_or_else(|e| e.code);
        for (url, expected) in [
            ("http://hooks.example.com/x", "CHANNEL_URL_NOT_HTTPS"),
            ("ftp://hooks.example.com/x", "CHANNEL_URL_NOT_HTTPS"),
            ("https://127.0.0.1/x", "CHANNEL_URL_FORBIDDEN"),
            ("https://localhost:8443/x", "CHANNEL_URL_FORBIDDEN"),
            ("https://api.localhost/x", "CHANNEL_URL_FORBIDDEN"),
            ("https://169.254.169.254/latest/meta-data/", "CHANNEL_URL_FORBIDDEN"),
            ("https://[fd00:ec2::254]/", "CHANNEL_URL_FORBIDDEN"),
            ("https://[::ffff:a9fe:a9fe]/", "CHANNEL_URL_FORBIDDEN"),
            // Other ways of writing an address are read as the address they are.
            ("https://2130706433/", "CHANNEL_URL_FORBIDDEN"),
            ("https://0x7f.1/", "CHANNEL_URL_FORBIDDEN"),
            ("https://0177.0.0.1/", "CHANNEL_URL_FORBIDDEN"),
            ("https://10.1/", "CHANNEL_URL_FORBIDDEN"),
            ("https://user:pw@hooks.example.com/", "CHANNEL_URL_INVALID"),
            ("https://hooks.example.com/#x", "CHANNEL_URL_INVALID"),
            ("https://intranet/x", "CHANNEL_URL_INVALID"),
            ("https://hooks.example.com/a b", "CHANNEL_URL_INVALID"),
            ("hooks.example.com", "CHANNEL_URL_INVALID"),
            ("https://93.184.215.14:8443/hook", "ok"),
        ] {
            assert_eq!(code(Reach::PUBLIC, url), expected, "{url}");
        }
        // Locally: loopback, over http too; nothing else inside a network, and http only to loopback.
        assert_eq!(code(Reach::LOCAL, "http://127.0.0.1:4000/hook"), "ok");
        assert_eq!(code(Reach::LOCAL, "http://localhost:4000/hook"), "ok");
        assert_eq!(code(Reach::LOCAL, "http://[::1]:4000/hook"), "ok");
        assert_eq!(code(Reach::LOCAL, "http://10.0.0.5/hook"), "CHANNEL_URL_FORBIDDEN");
        assert_eq!(code(Reach::LOCAL, "http://169.254.169.254/"), "CHANNEL_URL_FORBIDDEN");
        assert_eq!(code(Reach::LOCAL, "http://hooks.example.com/x"), "CHANNEL_URL_NOT_HTTPS");
    }

    #[test]
    fn resolved_addresses_must_all_be_public() {
        let public = [ip("93.184.215.14")];
        assert!(Reach::PUBLIC.check_addresses("hooks.example.com", &public).is_ok());
        let mixed = [ip("93.184.215.14"), ip("10.0.0.7")];
        assert_eq!(
            Reach::PUBLIC.check_addresses("hooks.example.com", &mixed).unwrap_err().code,
            "CHANNEL_URL_FORBIDDEN"
        );
        assert_eq!(Reach::PUBLIC.check_addresses("nowhere.example", &[]).unwrap_err().code, "CHANNEL_URL_UNRESOLVED");
    }

    #[test]
    fn every_refusal_code_is_listed() {
        let source = include_str!("channel.rs").split("#[cfg(test)]").next().unwrap();
        // Every code a refusal is made with, but the API's general one.
        let used: std::collections::BTreeSet<&str> = source
            .split("refused(")
            .skip(1)
            .filter_map(|rest| rest.trim_start().strip_prefix('"')?.split('"').next())
            .filter(|code| *code != "INVALID_REQUEST")
            .collect();
        assert_eq!(used, REFUSAL_CODES.into_iter().collect());
    }

    #[test]
    fn a_request_names_a_type_a_url_and_known_events() {
        let body = |kind: &str, events: &[&str]| ChannelBody {
            kind: Some(kind.into()),
            url: Some("https://hooks.example.com/q".into()),
            events: Some(events.iter().map(|e| e.to_string()).collect()),
        };
        let ok =
            ChannelRequest::parse(body("slack", &["QuotaExceeded", "QuotaRecovered", "QuotaExceeded"]), Reach::PUBLIC)
                .unwrap();
        assert_eq!(ok.kind, ChannelType::Slack);
        assert_eq!(ok.events, [EventKind::QuotaExceeded, EventKind::QuotaRecovered], "repeats once");
        let code = |b: ChannelBody| ChannelRequest::parse(b, Reach::PUBLIC).unwrap_err().code;
        assert_eq!(code(body("teams", &["QuotaExceeded"])), "UNKNOWN_CHANNEL_TYPE");
        assert_eq!(code(body("webhook", &["QuotaExceded"])), "UNKNOWN_EVENT");
        assert_eq!(code(body("webhook", &["QuotaReset"])), "UNKNOWN_EVENT", "not a channel's event");
        assert_eq!(code(body("webhook", &["DailyJobContinued"])), "UNKNOWN_EVENT");
        assert_eq!(code(body("webhook", &[])), "INVALID_REQUEST");
        assert_eq!(code(ChannelBody { kind: Some("webhook".into()), ..ChannelBody::default() }), "INVALID_REQUEST");
    }

    #[test]
    fn a_webhook_gets_a_secret_its_key_decodes_from() {
        let request = ChannelRequest {
            kind: ChannelType::Webhook,
            url: "https://hooks.example.com/q".into(),
            events: vec![EventKind::QuotaExceeded],
        };
        let now = "2026-12-07T10:00:00Z".parse().unwrap();
        let channel = Channel::new(request.clone(), "ops", now).unwrap();
        assert!(Channel::valid_id(&channel.id), "{}", channel.id);
        let secret = channel.secret.clone().unwrap();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(secret_key(&secret).unwrap().len(), 32);
        assert_eq!(channel.to_json(Shown::ToItsCreator)["secret"], secret.as_str());
        assert!(channel.to_json(Shown::Masked).get("secret").is_none());
        let slack = Channel::new(ChannelRequest { kind: ChannelType::Slack, ..request }, "ops", now).unwrap();
        assert_eq!(slack.secret, None);
        assert_ne!(Channel::new(slack.clone().into_request(), "ops", now).unwrap().id, slack.id);
    }

    #[test]
    fn a_url_is_shown_masked_to_all_but_its_creator() {
        let slack = "https://hooks.slack.com/services/T0AAA/B0BBB/s3cr3tTOKENa1B2";
        assert_eq!(masked(slack), "https://hooks.slack.com/…a1B2");
        assert_eq!(masked("https://h.example.com:8443/hook?token=abcdefXYZ9"), "https://h.example.com:8443/…XYZ9");
        assert_eq!(masked("https://h.example.com/"), "https://h.example.com/…");
        assert_eq!(masked("https://h.example.com/short"), "https://h.example.com/…");
        assert_eq!(
            masked("https://h.example.com/?k=abcdef12"),
            "https://h.example.com/…",
            "a short token stays hidden"
        );
        assert_eq!(masked("not a url"), "…");
    }

    impl Channel {
        fn into_request(self) -> ChannelRequest {
            ChannelRequest { kind: self.kind, url: self.url, events: self.events }
        }
    }
}
