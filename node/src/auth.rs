//! Who may use the API: bearer tokens mapped to a name and a role, and Open311 API keys.
//! Tokens are kept only as SHA-256 digests in memory, so a lookup compares digests and the
//! config may give `token_sha256` instead of the token itself.
//!
//! ```toml
//! [[api.tokens]]
//! name = "operator-li"
//! role = "operator"              # operator, grid_worker or auditor
//! token_sha256 = "9f86d0…"        # or: token = "…"
//!
//! [[api.open311_keys]]
//! name = "citizen-app"
//! key = "…"
//! ```

use crate::events::Identity;
use crate::workflow::Role;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    pub name: String,
    pub role: String,
    pub token: Option<String>,
    pub token_sha256: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Open311KeySpec {
    pub name: String,
    pub key: String,
}

type Digest32 = [u8; 32];

fn digest(secret: &str) -> Digest32 {
    Sha256::digest(secret.as_bytes()).into()
}

fn parse_hex_digest(hex: &str) -> Option<Digest32> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The bearer tokens and Open311 keys this node accepts.
#[derive(Debug, Default, Clone)]
pub struct Credentials {
    tokens: HashMap<Digest32, Identity>,
    open311: HashMap<Digest32, String>,
}

impl Credentials {
    pub fn from_specs(tokens: &[TokenSpec], keys: &[Open311KeySpec]) -> Result<Credentials, String> {
        let mut c = Credentials::default();
        for t in tokens {
            let role = Role::parse(&t.role).ok_or_else(|| {
                format!("api.tokens {:?}: role {:?} is not operator, grid_worker or auditor", t.name, t.role)
            })?;
            let hash = match (&t.token, &t.token_sha256) {
                (Some(tok), None) if tok.len() >= 16 => digest(tok),
                (Some(_), None) => {
                    return Err(format!("api.tokens {:?}: a token must be at least 16 characters", t.name))
                }
                (None, Some(h)) => parse_hex_digest(h)
                    .ok_or_else(|| format!("api.tokens {:?}: token_sha256 must be 64 hex digits", t.name))?,
                _ => return Err(format!("api.tokens {:?}: give exactly one of token and token_sha256", t.name)),
            };
            if t.name.is_empty() || t.name.len() > 128 {
                return Err("api.tokens: a token's name must be 1 to 128 bytes".into());
            }
            c.tokens.insert(hash, Identity { name: t.name.clone(), role });
        }
        for k in keys {
            c.add_open311_key(&k.name, &k.key)?;
        }
        Ok(c)
    }

    pub fn add_token(&mut self, token: &str, identity: Identity) {
        self.tokens.insert(digest(token), identity);
    }

    pub fn add_open311_key(&mut self, name: &str, key: &str) -> Result<(), String> {
        if key.len() < 8 {
            return Err(format!("Open311 key {name:?} must be at least 8 characters"));
        }
        self.open311.insert(digest(key), name.to_string());
        Ok(())
    }

    pub fn has_operator(&self) -> bool {
        self.tokens.values().any(|i| i.role == Role::Operator)
    }

    /// The identity a bearer token stands for.
    pub fn identify(&self, token: &str) -> Option<&Identity> {
        self.tokens.get(&digest(token))
    }

    /// Whether `name` is the name of a token's holder: a person (or a role account), never to
    /// be shown to the public as the one a request was dispatched to.
    pub fn names_a_person(&self, name: &str) -> bool {
        self.tokens.values().any(|i| i.name == name)
    }

    /// The name of an Open311 API key.
    pub fn open311_key(&self, key: &str) -> Option<&str> {
        self.open311.get(&digest(key)).map(String::as_str)
    }
}

/// 32 random bytes as hex.
pub fn generate_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The operator token kept in `<data_dir>/operator.token`: read it, or create it (readable by
/// the owner only) on first start. Returns the token, its path, and whether it was created.
pub fn operator_token(data_dir: &Path) -> Result<(String, PathBuf, bool), String> {
    let path = data_dir.join("operator.token");
    match std::fs::read_to_string(&path) {
        Ok(t) if t.trim().len() >= 16 => return Ok((t.trim().to_string(), path, false)),
        Ok(_) => {
            return Err(format!("{} is too short to be a token; delete it to have a new one made", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let token = generate_token()?;
    let tmp = data_dir.join("operator.token.tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        writeln!(f, "{token}")
            .and_then(|_| f.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    }
    std::fs::rename(&tmp, &path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    Ok((token, path, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_to_identities() {
        let hashed = "a".repeat(20);
        let hex: String = digest(&hashed).iter().map(|b| format!("{b:02x}")).collect();
        let c = Credentials::from_specs(
            &[
                TokenSpec {
                    name: "op".into(),
                    role: "operator".into(),
                    token: Some("t".repeat(16)),
                    token_sha256: None,
                },
                TokenSpec { name: "aud".into(), role: "auditor".into(), token: None, token_sha256: Some(hex) },
            ],
            &[Open311KeySpec { name: "app".into(), key: "k".repeat(8) }],
        )
        .unwrap();
        assert_eq!(c.identify(&"t".repeat(16)).unwrap().role, Role::Operator);
        assert_eq!(c.identify(&hashed).unwrap().name, "aud");
        assert!(c.identify("nope").is_none());
        assert_eq!(c.open311_key(&"k".repeat(8)), Some("app"));
        assert!(c.has_operator());
    }

    #[test]
    fn bad_specs_are_named() {
        let spec = |role: &str, token: Option<&str>, sha: Option<&str>| TokenSpec {
            name: "x".into(),
            role: role.into(),
            token: token.map(Into::into),
            token_sha256: sha.map(Into::into),
        };
        assert!(Credentials::from_specs(&[spec("mayor", Some(&"t".repeat(16)), None)], &[])
            .unwrap_err()
            .contains("mayor"));
        assert!(Credentials::from_specs(&[spec("operator", Some("short"), None)], &[]).unwrap_err().contains("16"));
        assert!(Credentials::from_specs(&[spec("operator", None, Some("zz"))], &[]).unwrap_err().contains("64 hex"));
        assert!(Credentials::from_specs(&[spec("operator", None, None)], &[]).unwrap_err().contains("exactly one"));
    }

    #[test]
    fn the_operator_token_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let (t1, path, created) = operator_token(dir.path()).unwrap();
        assert!(created && t1.len() == 64);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let (t2, _, created) = operator_token(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(t1, t2);
    }
}
