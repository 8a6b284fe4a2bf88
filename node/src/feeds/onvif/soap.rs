//! The requests: SOAP 1.2 envelopes with WS-Addressing headers (`Action`, `MessageID`, `To`,
//! `ReplyTo`) and a WS-Security UsernameToken, as ONVIF Core (section 5.12) asks of a client:
//! `PasswordDigest = Base64(SHA-1(nonce + created + password))`, the nonce's raw bytes, `created`
//! as written in the token.

use crate::rng::Rng;
use base64::Engine;
use std::fmt::Write;
use std::time::Duration;

pub const NS_SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
pub const NS_WSA: &str = "http://www.w3.org/2005/08/addressing";
pub const NS_WSSE: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
pub const NS_WSU: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
pub const NS_DEVICE: &str = "http://www.onvif.org/ver10/device/wsdl";
pub const NS_EVENTS: &str = "http://www.onvif.org/ver10/events/wsdl";
pub const NS_WSNT: &str = "http://docs.oasis-open.org/wsn/b-2";
/// ONVIF's topic namespace; the node writes its topics with the prefix `tns1:`.
pub const NS_TOPICS: &str = "http://www.onvif.org/ver10/topics";
const PASSWORD_DIGEST: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
const BASE64_BINARY: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";
const ANONYMOUS: &str = "http://www.w3.org/2005/08/addressing/anonymous";
/// Bytes of the WS-Security nonce.
const NONCE_BYTES: usize = 16;

/// The operations the node uses, with their WS-Addressing actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    GetSystemDateAndTime,
    GetCapabilities,
    CreatePullPointSubscription,
    PullMessages,
    Renew,
    Unsubscribe,
}

impl Operation {
    pub fn action(self) -> &'static str {
        match self {
            Operation::GetSystemDateAndTime => "http://www.onvif.org/ver10/device/wsdl/GetSystemDateAndTime",
            Operation::GetCapabilities => "http://www.onvif.org/ver10/device/wsdl/GetCapabilities",
            Operation::CreatePullPointSubscription => {
                "http://www.onvif.org/ver10/events/wsdl/EventPortType/CreatePullPointSubscriptionRequest"
            }
            Operation::PullMessages => {
                "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription/PullMessagesRequest"
            }
            Operation::Renew => "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/RenewRequest",
            Operation::Unsubscribe => "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/UnsubscribeRequest",
        }
    }

    /// For logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Operation::GetSystemDateAndTime => "GetSystemDateAndTime",
            Operation::GetCapabilities => "GetCapabilities",
            Operation::CreatePullPointSubscription => "CreatePullPointSubscription",
            Operation::PullMessages => "PullMessages",
            Operation::Renew => "Renew",
            Operation::Unsubscribe => "Unsubscribe",
        }
    }
}

/// Who signs the requests; an empty username sends no Security header.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// The parameters of one request's body.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// InitialTerminationTime (Create) and TerminationTime (Renew).
    pub termination: Duration,
    /// PullMessages' Timeout and MessageLimit.
    pub pull_timeout: Duration,
    pub message_limit: u32,
}

/// `PT<n>S`, whole seconds (at least one): an xs:duration every camera reads.
pub fn xs_duration(d: Duration) -> String {
    format!("PT{}S", d.as_secs().max(1))
}

/// `YYYY-MM-DDThh:mm:ss.mmmZ` for `ms` since the epoch.
pub fn utc_timestamp(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Base64(SHA-1(nonce + created + password)).
pub fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(nonce);
    ctx.update(created.as_bytes());
    ctx.update(password.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ctx.finish())
}

/// Escape text for an element's content or a double-quoted attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The envelope of `op` to `to`, signed by `credentials` at `now_ms` (the camera's time as the
/// node reckons it: its clock corrected by the camera's offset), its nonce and message id drawn
/// from `rng`.
pub fn envelope(
    op: Operation,
    to: &str,
    params: &Params,
    credentials: &Credentials,
    now_ms: u64,
    rng: &mut Rng,
) -> String {
    let mut id = [0u8; 16];
    rng.fill(&mut id);
    // A version-4-shaped UUID from the seeded stream (the id only has to differ per request).
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let message_id = format!("urn:uuid:{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]);

    let mut x = String::with_capacity(2048);
    let _ = write!(
        x,
        r#"<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{NS_SOAP}" xmlns:wsa="{NS_WSA}" xmlns:tds="{NS_DEVICE}" xmlns:tev="{NS_EVENTS}" xmlns:wsnt="{NS_WSNT}"><s:Header>"#
    );
    let _ = write!(
        x,
        r#"<wsa:Action s:mustUnderstand="1">{}</wsa:Action><wsa:MessageID>{message_id}</wsa:MessageID><wsa:ReplyTo><wsa:Address>{ANONYMOUS}</wsa:Address></wsa:ReplyTo><wsa:To s:mustUnderstand="1">{}</wsa:To>"#,
        op.action(),
        escape(to)
    );
    // GetSystemDateAndTime is open to anyone (ONVIF's access class PRE_AUTH), and it is how the
    // node learns the clock a token must be dated by: it goes unsigned.
    if !credentials.username.is_empty() && op != Operation::GetSystemDateAndTime {
        let mut nonce = [0u8; NONCE_BYTES];
        rng.fill(&mut nonce);
        let created = utc_timestamp(now_ms);
        let digest = password_digest(&nonce, &created, &credentials.password);
        let _ = write!(
            x,
            r#"<wsse:Security s:mustUnderstand="1" xmlns:wsse="{NS_WSSE}" xmlns:wsu="{NS_WSU}"><wsse:UsernameToken><wsse:Username>{}</wsse:Username><wsse:Password Type="{PASSWORD_DIGEST}">{digest}</wsse:Password><wsse:Nonce EncodingType="{BASE64_BINARY}">{}</wsse:Nonce><wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>"#,
            escape(&credentials.username),
            base64::engine::general_purpose::STANDARD.encode(nonce)
        );
    }
    x.push_str("</s:Header><s:Body>");
    match op {
        Operation::GetSystemDateAndTime => x.push_str("<tds:GetSystemDateAndTime/>"),
        Operation::GetCapabilities => {
            x.push_str("<tds:GetCapabilities><tds:Category>Events</tds:Category></tds:GetCapabilities>")
        }
        Operation::CreatePullPointSubscription => {
            let _ = write!(
                x,
                "<tev:CreatePullPointSubscription><tev:InitialTerminationTime>{}</tev:InitialTerminationTime></tev:CreatePullPointSubscription>",
                xs_duration(params.termination)
            );
        }
        Operation::PullMessages => {
            let _ = write!(
                x,
                "<tev:PullMessages><tev:Timeout>{}</tev:Timeout><tev:MessageLimit>{}</tev:MessageLimit></tev:PullMessages>",
                xs_duration(params.pull_timeout),
                params.message_limit
            );
        }
        Operation::Renew => {
            let _ = write!(
                x,
                "<wsnt:Renew><wsnt:TerminationTime>{}</wsnt:TerminationTime></wsnt:Renew>",
                xs_duration(params.termination)
            );
        }
        Operation::Unsubscribe => x.push_str("<wsnt:Unsubscribe/>"),
    }
    x.push_str("</s:Body></s:Envelope>");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_the_username_token_profiles() {
        // The digest example quoted across ONVIF client documentation, checked independently
        // with Python's hashlib.
        let nonce = base64::engine::general_purpose::STANDARD.decode("LKqI6G/AikKCQrN0zqZFlg==").unwrap();
        assert_eq!(password_digest(&nonce, "2010-09-16T07:50:45Z", "userpassword"), "tuOSpGlFlIXsozq4HFNeeGeFLEI=");
    }

    #[test]
    fn timestamps_and_durations() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_timestamp(1_764_146_400_123), "2025-11-26T08:40:00.123Z");
        assert_eq!(xs_duration(Duration::from_millis(10_400)), "PT10S");
        assert_eq!(xs_duration(Duration::ZERO), "PT1S");
    }

    #[test]
    fn envelopes_carry_addressing_and_a_token() {
        let params =
            Params { termination: Duration::from_secs(60), pull_timeout: Duration::from_secs(10), message_limit: 100 };
        let creds = Credentials { username: "yi<wang".into(), password: "pw".into() };
        let mut rng = Rng::new(7);
        let x = envelope(Operation::PullMessages, "http://cam/sub?id=1&x=2", &params, &creds, 5, &mut rng);
        assert!(x.contains("<wsa:To s:mustUnderstand=\"1\">http://cam/sub?id=1&amp;x=2</wsa:To>"), "{x}");
        assert!(x.contains("<tev:Timeout>PT10S</tev:Timeout><tev:MessageLimit>100</tev:MessageLimit>"), "{x}");
        assert!(x.contains("<wsse:Username>yi&lt;wang</wsse:Username>"), "{x}");
        assert!(x.contains("<wsu:Created>1970-01-01T00:00:00.005Z</wsu:Created>"), "{x}");
        let anonymous = Credentials { username: String::new(), password: String::new() };
        assert!(
            !envelope(Operation::Unsubscribe, "http://cam/sub", &params, &anonymous, 5, &mut rng).contains("Security")
        );
        let again = envelope(Operation::PullMessages, "http://cam/sub?id=1&x=2", &params, &creds, 5, &mut Rng::new(7));
        assert_eq!(x, again, "the same seed writes the same request");
    }
}
