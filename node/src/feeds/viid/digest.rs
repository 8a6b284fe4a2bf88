//! HTTP Digest authentication as the view-library platform's side of `Register` (RFC 7616,
//! with RFC 2617's MD5 as devices use it; SHA-256 too).
//!
//! Nonces are stateless: the time they were made and an HMAC of it under a key from the
//! node's seed, so a restart or a second listener needs no shared table, and a nonce older than
//! [`NONCE_LIFETIME_MS`] is answered `stale=true` (the device retries at once without asking
//! its user again). A bounded record of the nonce counts already used refuses a replayed
//! `Authorization` header.

use md5::Md5;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// How long a nonce is good for.
pub const NONCE_LIFETIME_MS: u64 = 5 * 60 * 1000;
/// Longest `Authorization` header read.
const MAX_HEADER_BYTES: usize = 4096;
/// Most parameters read from one header.
const MAX_PARAMS: usize = 16;
/// Nonces whose counts are remembered for replay checks; the oldest are forgotten first
/// (a forgotten nonce is soon stale anyway).
const MAX_REMEMBERED_NONCES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("no Authorization header: register with HTTP Digest")]
    Missing,
    #[error("the Authorization header is not HTTP Digest or is malformed: {0}")]
    Malformed(&'static str),
    #[error("realm {0:?} is not this platform's")]
    WrongRealm(String),
    #[error("the nonce was not made here")]
    BadNonce,
    #[error("the nonce is stale")]
    Stale,
    #[error("algorithm {0:?} is not supported (MD5 or SHA-256)")]
    Algorithm(String),
    #[error("qop {0:?} is not supported (auth)")]
    Qop(String),
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("the digest uri {0:?} is not the request's")]
    WrongUri(String),
    #[error("nonce count {0} was already used")]
    Replay(u32),
    #[error("wrong password")]
    WrongResponse,
}

impl DigestError {
    /// Label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            DigestError::Missing => "missing",
            DigestError::Malformed(_) => "malformed",
            DigestError::WrongRealm(_) => "wrong_realm",
            DigestError::BadNonce => "bad_nonce",
            DigestError::Stale => "stale",
            DigestError::Algorithm(_) => "algorithm",
            DigestError::Qop(_) => "qop",
            DigestError::UnknownUser(_) => "unknown_user",
            DigestError::WrongUri(_) => "wrong_uri",
            DigestError::Replay(_) => "replay",
            DigestError::WrongResponse => "wrong_password",
        }
    }
}

#[derive(Clone, Copy)]
enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn hex(self, parts: &[&str]) -> String {
        let joined = parts.join(":");
        match self {
            Algorithm::Md5 => hex(&Md5::digest(joined.as_bytes())),
            Algorithm::Sha256 => hex(&Sha256::digest(joined.as_bytes())),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The platform's side of Digest: makes challenges, checks answers.
pub struct DigestAuth {
    realm: String,
    key: ring::hmac::Key,
    /// Nonce → highest nonce count accepted with it.
    used: BTreeMap<String, u32>,
}

impl DigestAuth {
    pub fn new(realm: &str, key: [u8; 32]) -> DigestAuth {
        DigestAuth {
            realm: realm.to_string(),
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
            used: BTreeMap::new(),
        }
    }

    fn nonce(&self, now_ms: u64) -> String {
        let tag = ring::hmac::sign(&self.key, &now_ms.to_be_bytes());
        format!("{now_ms:016x}{}", hex(&tag.as_ref()[..16]))
    }

    /// When a nonce made here was made; `None` if it was not made here.
    fn nonce_time(&self, nonce: &str) -> Option<u64> {
        if nonce.len() != 48 || !nonce.is_ascii() {
            return None;
        }
        let made = u64::from_str_radix(&nonce[..16], 16).ok()?;
        (self.nonce(made) == nonce).then_some(made)
    }

    /// The `WWW-Authenticate` value for a 401.
    pub fn challenge(&self, now_ms: u64, stale: bool) -> String {
        format!(
            "Digest realm=\"{}\", qop=\"auth\", algorithm=MD5, nonce=\"{}\"{}",
            self.realm,
            self.nonce(now_ms),
            if stale { ", stale=true" } else { "" }
        )
    }

    /// Check an `Authorization` header for a request of `method` to `path`; `password` gives a
    /// user's password. Returns the user name.
    pub fn verify<'p>(
        &mut self,
        header: Option<&str>,
        method: &str,
        path: &str,
        now_ms: u64,
        password: impl Fn(&str) -> Option<&'p str>,
    ) -> Result<String, DigestError> {
        let header = header.ok_or(DigestError::Missing)?;
        if header.len() > MAX_HEADER_BYTES {
            return Err(DigestError::Malformed("header too long"));
        }
        let rest = header
            .strip_prefix("Digest ")
            .or_else(|| header.strip_prefix("digest "))
            .ok_or(DigestError::Malformed("not Digest"))?;
        let params = parse_params(rest)?;
        let get = |k: &str| params.get(k).map(String::as_str);
        let need = |k: &'static str| get(k).ok_or(DigestError::Malformed(k));
        let (user, realm, nonce, uri, response) =
            (need("username")?, need("realm")?, need("nonce")?, need("uri")?, need("response")?);
        if realm != self.realm {
            return Err(DigestError::WrongRealm(realm.chars().take(64).collect()));
        }
        let made = self.nonce_time(nonce).ok_or(DigestError::BadNonce)?;
        if now_ms.saturating_sub(made) > NONCE_LIFETIME_MS || made > now_ms.saturating_add(NONCE_LIFETIME_MS) {
            return Err(DigestError::Stale);
        }
        let algorithm = match get("algorithm") {
            None => Algorithm::Md5,
            Some(a) if a.eq_ignore_ascii_case("MD5") => Algorithm::Md5,
            Some(a) if a.eq_ignore_ascii_case("SHA-256") => Algorithm::Sha256,
            Some(a) => return Err(DigestError::Algorithm(a.chars().take(32).collect())),
        };
        // Devices send the path, or now and then the whole URL.
        let uri_path = uri.find("://").map_or(uri, |i| uri[i + 3..].find('/').map_or("/", |j| &uri[i + 3 + j..]));
        if uri_path != path {
            return Err(DigestError::WrongUri(uri.chars().take(128).collect()));
        }
        let password = password(user).ok_or_else(|| DigestError::UnknownUser(user.chars().take(64).collect()))?;
        let ha1 = algorithm.hex(&[user, realm, password]);
        let ha2 = algorithm.hex(&[method, uri]);
        let (expected, nc) = match get("qop") {
            Some("auth") => {
                let nc_text = need("nc")?;
                let nc = u32::from_str_radix(nc_text, 16).map_err(|_| DigestError::Malformed("nc"))?;
                (algorithm.hex(&[&ha1, nonce, nc_text, need("cnonce")?, "auth", &ha2]), nc)
            }
            // RFC 2069 style, without qop: one use per nonce.
            None => (algorithm.hex(&[&ha1, nonce, &ha2]), 1),
            Some(q) => return Err(DigestError::Qop(q.chars().take(32).collect())),
        };
        if !constant_time_eq(expected.as_bytes(), response.to_ascii_lowercase().as_bytes()) {
            return Err(DigestError::WrongResponse);
        }
        if self.used.get(nonce).is_some_and(|&last| nc <= last) {
            return Err(DigestError::Replay(nc));
        }
        self.remember(nonce, nc, now_ms);
        Ok(user.to_string())
    }

    fn remember(&mut self, nonce: &str, nc: u32, now_ms: u64) {
        self.used.retain(|n, _| nonce_made(n).is_some_and(|t| now_ms.saturating_sub(t) <= NONCE_LIFETIME_MS));
        if self.used.len() >= MAX_REMEMBERED_NONCES {
            // Forget the oldest (nonces sort by the time they were made).
            if let Some(oldest) = self.used.keys().next().cloned() {
                self.used.remove(&oldest);
            }
        }
        self.used.insert(nonce.to_string(), nc);
    }
}

/// The time in a nonce already checked once.
fn nonce_made(nonce: &str) -> Option<u64> {
    nonce.get(..16).and_then(|t| u64::from_str_radix(t, 16).ok())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `k=v, k="v", ...` with backslash escapes in quoted values.
fn parse_params(s: &str) -> Result<BTreeMap<String, String>, DigestError> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect::<String>().trim().to_ascii_lowercase();
        if key.is_empty() || key.contains(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_') {
            return Err(DigestError::Malformed("parameter name"));
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => value.push(chars.next().ok_or(DigestError::Malformed("escape"))?),
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => return Err(DigestError::Malformed("unterminated quote")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                value.push(c);
            }
            value = value.trim().to_string();
        }
        if out.len() == MAX_PARAMS {
            return Err(DigestError::Malformed("too many parameters"));
        }
        out.insert(key, value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_796_032_800_000;

    /// A device's side, as RFC 7616 section 3.4.1 computes it.
    fn answer(auth: &DigestAuth, user: &str, password: &str, uri: &str, nc: u32, now: u64) -> String {
        let nonce = auth.nonce(now);
        let a = Algorithm::Md5;
        let ha1 = a.hex(&[user, "yiwang", password]);
        let ha2 = a.hex(&["POST", uri]);
        let nc = format!("{nc:08x}");
        let response = a.hex(&[&ha1, &nonce, &nc, "0a4f113b", "auth", &ha2]);
        format!(
            r#"Digest username="{user}", realm="yiwang", nonce="{nonce}", uri="{uri}", algorithm=MD5, qop=auth, nc={nc}, cnonce="0a4f113b", response="{response}""#
        )
    }

    fn auth() -> DigestAuth {
        DigestAuth::new("yiwang", [7; 32])
    }

    fn pw(user: &str) -> Option<&'static str> {
        (user == "dev1").then_some("Circle Of Life")
    }

    #[test]
    fn rfc_2617_example_response() {
        // RFC 2617 section 3.5: the response for Mufasa's request.
        let a = Algorithm::Md5;
        let ha1 = a.hex(&["Mufasa", "testrealm@host.com", "Circle Of Life"]);
        let ha2 = a.hex(&["GET", "/dir/index.html"]);
        let r = a.hex(&[&ha1, "dcd98b7102dd2f0e8b11d0f600bfb0c093", "00000001", "0a4f113b", "auth", &ha2]);
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn a_right_answer_passes_once_and_wrong_ones_say_why() {
        let mut auth = auth();
        let path = "/VIID/System/Register";
        let good = answer(&auth, "dev1", "Circle Of Life", path, 1, NOW);
        assert_eq!(auth.verify(Some(&good), "POST", path, NOW + 1000, pw).unwrap(), "dev1");
        assert_eq!(auth.verify(Some(&good), "POST", path, NOW + 2000, pw), Err(DigestError::Replay(1)));
        let next = answer(&auth, "dev1", "Circle Of Life", path, 2, NOW);
        assert!(auth.verify(Some(&next), "POST", path, NOW + 2000, pw).is_ok());

        let cases = [
            (answer(&auth, "dev1", "wrong", path, 1, NOW), DigestError::WrongResponse),
            (answer(&auth, "dev2", "x", path, 1, NOW), DigestError::UnknownUser("dev2".into())),
            (
                answer(&auth, "dev1", "Circle Of Life", "/VIID/Faces", 1, NOW),
                DigestError::WrongUri("/VIID/Faces".into()),
            ),
            (answer(&auth, "dev1", "Circle Of Life", path, 1, NOW - NONCE_LIFETIME_MS - 1), DigestError::Stale),
            (
                answer(&DigestAuth::new("yiwang", [8; 32]), "dev1", "Circle Of Life", path, 1, NOW),
                DigestError::BadNonce,
            ),
            ("Basic ZGV2MTp4".to_string(), DigestError::Malformed("not Digest")),
            (r#"Digest username="dev1", realm="yiwang""#.to_string(), DigestError::Malformed("nonce")),
        ];
        for (header, want) in cases {
            assert_eq!(auth.verify(Some(&header), "POST", path, NOW + 3000, pw), Err(want), "{header}");
        }
        assert_eq!(auth.verify(None, "POST", path, NOW, pw), Err(DigestError::Missing));
    }

    #[test]
    fn the_whole_url_as_uri_is_accepted() {
        let mut auth = auth();
        let path = "/VIID/System/Register";
        let h = answer(&auth, "dev1", "Circle Of Life", "http://10.1.2.3:7812/VIID/System/Register", 1, NOW);
        assert!(auth.verify(Some(&h), "POST", path, NOW, pw).is_ok());
    }

    #[test]
    fn challenges_carry_a_fresh_nonce_and_say_stale() {
        let auth = auth();
        let c = auth.challenge(NOW, true);
        assert!(c.starts_with("Digest realm=\"yiwang\", qop=\"auth\""), "{c}");
        assert!(c.ends_with("stale=true"));
        assert_eq!(auth.nonce_time(&auth.nonce(NOW)), Some(NOW));
    }

    proptest! {
        #[test]
        fn garbage_headers_never_panic(s in ".{0,400}") {
            let mut auth = auth();
            let _ = auth.verify(Some(&s), "POST", "/", NOW, pw);
            let _ = auth.verify(Some(&format!("Digest {s}")), "POST", "/", NOW, pw);
        }
    }
}
