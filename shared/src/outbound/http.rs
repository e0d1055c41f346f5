//! The one way the service reaches a customer's endpoint: resolve the host,
//! check every address it resolves to ([`Reach`]), connect to one that
//! passed, send one `POST`, read the status, hang up. No redirect is
//! followed, no connection is kept, and every step is inside one time bound.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::Full;
use hyper_util::rt::TokioIo;

use crate::domain::channel::{Host, Reach, Refused, Target};

/// The longest a channel's host may take to resolve, at creation and
/// before a delivery: the customer runs its DNS, and a creation must answer
/// within the API's bounds.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest one attempt may take: connecting, TLS, sending, and the
/// receiver's answer (its status line and headers).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Looks up a host's addresses.
pub trait Resolve: Send + Sync + std::fmt::Debug {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, std::io::Result<Vec<IpAddr>>>;
}

/// The system's resolver (in Lambda, the VPC's or AWS's DNS).
#[derive(Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, std::io::Result<Vec<IpAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.map(|a| a.ip()).collect()) })
    }
}

/// A fixed table of names (the tests'): nothing else resolves, and no DNS
/// server is ever asked.
#[derive(Debug, Default, Clone)]
pub struct StaticResolver(pub HashMap<String, Vec<IpAddr>>);

impl Resolve for StaticResolver {
    fn resolve<'a>(&'a self, host: &'a str, _port: u16) -> BoxFuture<'a, std::io::Result<Vec<IpAddr>>> {
        let found = self.0.get(host).cloned().unwrap_or_default();
        Box::pin(async move { Ok(found) })
    }
}

/// Where channels may point, and how their hosts are looked up.
#[derive(Debug, Clone)]
pub struct Net {
    pub reach: Reach,
    pub resolver: Arc<dyn Resolve>,
    /// Connect to loopback addresses only, whatever passed the check: the
    /// tests' guard, so that no test can reach beyond this machine even
    /// when the check under test is wrong.
    pub loopback_only: bool,
}

impl Net {
    /// AWS: public addresses, `https`, the system's resolver.
    pub fn public() -> Net {
        Net { reach: Reach::PUBLIC, resolver: Arc::new(SystemResolver), loopback_only: false }
    }

    /// `QUOTA_ALLOW_PRIVATE_WEBHOOKS=1` (local runs): loopback too.
    pub fn local() -> Net {
        Net { reach: Reach::LOCAL, ..Net::public() }
    }

    /// The tests': loopback allowed, names from `hosts` only, and
    /// connections to loopback only.
    pub fn tests(hosts: StaticResolver) -> Net {
        Net { reach: Reach::LOCAL, resolver: Arc::new(hosts), loopback_only: true }
    }

    /// Loopback and nothing else, with no DNS server ever asked (only
    /// `localhost` resolves): what a test harness runs `quota-local` with.
    pub fn loopback_only() -> Net {
        let localhost = [("localhost".to_string(), vec![IpAddr::from([127, 0, 0, 1])])];
        Net::tests(StaticResolver(localhost.into_iter().collect()))
    }

    /// `url` as a channel may use it now: its shape, and every address its
    /// host resolves to (a name that resolves to nothing is refused).
    pub async fn check(&self, url: &str) -> Result<(Target, Vec<IpAddr>), Refused> {
        let target = self.reach.check_url(url)?;
        let ips = match &target.host {
            Host::Ip(ip) => vec![*ip],
            Host::Name(name) => {
                let lookup = self.resolver.resolve(name, target.port);
                let found = match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                    Ok(found) => found.unwrap_or_default(),
                    Err(_) => {
                        return Err(Refused {
                            code: "CHANNEL_URL_UNRESOLVED",
                            message: format!(
                                "url's host {name} did not resolve within {} s",
                                RESOLVE_TIMEOUT.as_secs()
                            ),
                        });
                    }
                };
                self.reach.check_addresses(name, &found)?;
                found
            }
        };
        Ok((target, ips))
    }
}

/// Sends deliveries through [`Net`].
#[derive(Debug, Clone)]
pub struct Sender {
    net: Net,
    tls: Arc<OnceLock<Arc<rustls::ClientConfig>>>,
    timeout: Duration,
}

impl Sender {
    pub fn new(net: Net) -> Sender {
        Sender { net, tls: Arc::default(), timeout: ATTEMPT_TIMEOUT }
    }

    pub fn net(&self) -> &Net {
        &self.net
    }

    /// POSTs `body` (JSON) to `url` with `headers`: the receiver's status
    /// code, or why there was none.
    pub async fn post(&self, url: &str, headers: &[(&'static str, String)], body: String) -> Result<u16, String> {
        let send = async {
            let (target, ips) = self.net.check(url).await.map_err(|r| r.message)?;
            let ip = ips.first().copied().ok_or("the host has no address")?;
            if self.net.loopback_only && !ip.is_loopback() {
                return Err(format!("{ip} is not a loopback address, and this sender reaches loopback only"));
            }
            let stream = tokio::net::TcpStream::connect(SocketAddr::new(ip, target.port))
                .await
                .map_err(|e| format!("cannot connect to {ip}:{}: {e}", target.port))?;
            let request = request(url, headers, body)?;
            if target.https {
                let name = match &target.host {
                    Host::Name(n) => rustls::pki_types::ServerName::try_from(n.clone()).map_err(|e| e.to_string())?,
                    Host::Ip(ip) => rustls::pki_types::ServerName::IpAddress((*ip).into()),
                };
                let tls = tokio_rustls::TlsConnector::from(self.tls_config())
                    .connect(name, stream)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                exchange(TokioIo::new(tls), request).await
            } else {
                exchange(TokioIo::new(stream), request).await
            }
        };
        match tokio::time::timeout(self.timeout, send).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} s", self.timeout.as_secs())),
        }
    }

    fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        self.tls
            .get_or_init(|| {
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map(|b| b.with_root_certificates(roots).with_no_client_auth());
                Arc::new(config.expect("ring supports the default protocol versions"))
            })
            .clone()
    }
}

fn request(url: &str, headers: &[(&'static str, String)], body: String) -> Result<hyper::Request<Full<Bytes>>, String> {
    let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
    let path = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    // As the TLS server name: without a root's trailing dot.
    let host = match (parsed.host_str().map(|h| h.trim_end_matches('.')), parsed.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err("the URL has no host".into()),
    };
    let mut builder = hyper::Request::post(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "quota-service-webhooks/1");
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    builder.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())
}

async fn exchange<IO>(io: IO, request: hyper::Request<Full<Bytes>>) -> Result<u16, String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut send, connection) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let answer = send.send_request(request).await.map_err(|e| format!("no answer: {e}"));
    // The status is all a delivery needs: hang up without reading the body.
    driver.abort();
    Ok(answer?.status().as_u16())
}
