//! Email through SES v2: the sender, and the templates (`templates`). What
//! is sent when, and how it is kept from being sent twice, is `delivery`.

pub mod templates;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::ProvideErrorMetadata;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use chrono::Utc;

use templates::Email;

/// An email that was not sent, and whether it may have been anyway.
#[derive(Debug, thiserror::Error)]
#[error("email not sent: {detail}")]
pub struct SendError {
    pub detail: String,
    /// The request may have reached SES: the email may have gone out.
    pub outcome_unknown: bool,
    /// SES refused this message for good (`MessageRejected`: in the
    /// sandbox, an unverified recipient; `BadRequest`: an address or a
    /// message it will never take). Sending it again can never succeed.
    pub rejected: bool,
}

impl SendError {
    fn local(detail: &str) -> SendError {
        SendError { detail: detail.to_string(), outcome_unknown: false, rejected: false }
    }
}

/// SES v2's errors for a message it will never accept.
const REJECTED: &[&str] = &["MessageRejected", "BadRequestException"];
/// SES v2's throttling: certainly not sent (the account's sending rate,
/// which counts recipients, is 1 per second in the sandbox).
const THROTTLED: &str = "TooManyRequestsException";

/// Sends email from one verified identity. A function that sends no email
/// has no client ([`Notifier::absent`]).
#[derive(Clone, Debug)]
pub struct Notifier {
    client: Option<Client>,
    sender: String,
    dashboard_url: String,
    /// Local runs only: a copy of every sent email as `.html` here.
    outbox: Option<PathBuf>,
}

impl Notifier {
    pub fn new(client: Client, sender: &str, dashboard_url: &str) -> Self {
        Notifier {
            client: Some(client),
            sender: sender.to_string(),
            dashboard_url: dashboard_url.to_string(),
            outbox: None,
        }
    }

    /// Without a client: every send fails, saying so.
    pub fn absent(sender: &str, dashboard_url: &str) -> Self {
        Notifier { client: None, sender: sender.to_string(), dashboard_url: dashboard_url.to_string(), outbox: None }
    }

    /// Also writes each sent email to `dir` (the local server offers this).
    pub fn with_outbox(mut self, dir: PathBuf) -> Self {
        self.outbox = Some(dir);
        self
    }

    pub fn client(&self) -> Option<&Client> {
        self.client.as_ref()
    }

    pub fn sender(&self) -> &str {
        &self.sender
    }

    pub fn dashboard_url(&self) -> &str {
        &self.dashboard_url
    }

    /// One message, addressed to every recipient. Throttling (certainly
    /// not sent) is retried, jittered, for as long as `patience` allows;
    /// every other failure is answered at once.
    pub async fn send(&self, to: &[String], email: &Email, patience: Duration) -> Result<(), SendError> {
        let Some(client) = &self.client else {
            return Err(SendError::local("this function has no email client"));
        };
        let utf8 = |text: &str| Content::builder().data(text).charset("UTF-8").build();
        let (subject, html, text) = match (utf8(&email.subject), utf8(&email.html), utf8(&email.text)) {
            (Ok(s), Ok(h), Ok(t)) => (s, h, t),
            _ => return Err(SendError::local("email content did not build")),
        };
        let message = Message::builder().subject(subject).body(Body::builder().html(html).text(text).build()).build();
        let give_up = Instant::now() + patience;
        let mut pause = Duration::from_millis(200);
        loop {
            let sent = client
                .send_email()
                .from_email_address(&self.sender)
                .destination(Destination::builder().set_to_addresses(Some(to.to_vec())).build())
                .content(EmailContent::builder().simple(message.clone()).build())
                .send()
                .await;
            let Err(err) = sent else { break };
            let code = err.as_service_error().and_then(|e| e.code()).unwrap_or_default().to_string();
            let wait =
                pause / 2 + Duration::from_millis(crate::domain::random_u64() % pause.as_millis().max(1) as u64 / 2);
            if code == THROTTLED && Instant::now() + wait < give_up {
                tracing::info!("SES throttled the send; trying again");
                tokio::time::sleep(wait).await;
                pause = (pause * 2).min(Duration::from_secs(2));
                continue;
            }
            return Err(SendError {
                detail: match err.as_service_error().and_then(|e| e.message()) {
                    Some(message) => format!("{code}: {message}"),
                    None => crate::store::root_cause(&err),
                },
                outcome_unknown: crate::clients::outcome_unknown(&err),
                rejected: REJECTED.contains(&code.as_str()),
            });
        }
        if let Some(dir) = &self.outbox {
            let name = format!("{}-{}.html", Utc::now().format("%Y%m%dT%H%M%S%.3f"), slug(&email.subject));
            if let Err(err) = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(dir.join(name), &email.html)) {
                tracing::warn!(error = %err, "could not write the outbox copy");
            }
        }
        Ok(())
    }
}

fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).take(60).collect()
}
