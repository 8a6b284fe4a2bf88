//! Node identity: an id that names a site and the role it plays in the tiers.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Longest node id accepted. Ids end up in certificate SANs, store keys and every entry, so
/// they are kept short.
pub const MAX_NODE_ID_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("node id is empty")]
    Empty,
    #[error("node id is {0} bytes long; the limit is {MAX_NODE_ID_LEN}")]
    TooLong(usize),
    #[error("node id {0:?} may only hold lower-case ASCII letters, digits, '-', '_' and '.'")]
    BadChar(String),
    #[error("unknown role {0:?}: expected city, county, town or harbour")]
    UnknownRole(String),
}

/// The id of one site's node, such as `town-wendeng-zhangjiachan`. Valid by construction:
/// 1 to 64 bytes of `[a-z0-9._-]`, usable as a DNS-style SAN and as a store-key prefix.
///
/// Shared, not copied, when cloned: ids sit in every entry and in every version vector, which
/// replication copies often (a city's vector names every site).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(Arc<str>);

impl NodeId {
    pub fn new(id: impl Into<String>) -> Result<Self, IdError> {
        let id = id.into();
        if id.is_empty() {
            return Err(IdError::Empty);
        }
        if id.len() > MAX_NODE_ID_LEN {
            return Err(IdError::TooLong(id.len()));
        }
        let ok = id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(IdError::BadChar(id));
        }
        Ok(NodeId(id.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Encoded as the string itself, as it always was.
impl Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NodeId::new(s).map_err(serde::de::Error::custom)
    }
}

impl FromStr for NodeId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        NodeId::new(s)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The tier a node serves. Comes from configuration locally and, across the mesh, from the
/// signed certificate, never from what a peer says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    City,
    County,
    Town,
    Harbour,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::City, Role::County, Role::Town, Role::Harbour];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::City => "city",
            Role::County => "county",
            Role::Town => "town",
            Role::Harbour => "harbour",
        }
    }
}

impl FromStr for Role {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| IdError::UnknownRole(s.to_string()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node's id together with its role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeIdentity {
    pub id: NodeId,
    pub role: Role,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(NodeId::new("town-wendeng-01").is_ok());
        assert_eq!(NodeId::new(""), Err(IdError::Empty));
        assert!(matches!(NodeId::new("Town"), Err(IdError::BadChar(_))));
        assert!(matches!(NodeId::new("a b"), Err(IdError::BadChar(_))));
        assert_eq!(NodeId::new("a".repeat(65)), Err(IdError::TooLong(65)));
        assert!(NodeId::new("a".repeat(64)).is_ok());
    }

    #[test]
    fn roles_parse_and_print() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("mayor".parse::<Role>().is_err());
    }
}
