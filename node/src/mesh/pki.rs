//! Certificates for the mesh: the city CA, node certificates, the PEM files they live in, and
//! reading a node's identity back out of a certificate. The conventions (docs/pki.md) live
//! here, next to the code that checks them; `yiwangctl` only calls these functions.
//!
//! A node certificate carries, all under the CA's signature:
//! - the node id as the one DNS name in the subject alternative names (what a client dials and
//!   what rustls checks the server against),
//! - the node id again as the URI `urn:yiwang:node:<id>`,
//! - the role as the URI `urn:yiwang:role:<role>`,
//! - both TLS web server and client authentication usages: every node is a server to its
//!   children and a client of its parents.
//!
//! [`cert_identity`] reads the id and role back and is what every peer believes; nothing a peer
//! says about itself counts.
//!
//! No function here reads the clock: the caller passes `now` (see [`Validity::days_from`]).

use proto::{NodeId, NodeIdentity, Role};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, DnsName, PrivateKeyDer};
use std::io::Write;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::{GeneralName, ParsedExtension};

/// The CA certificate in a CA directory (and, copied, in every node's directory).
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA's private key; only in the CA directory, mode 0600.
pub const CA_KEY_FILE: &str = "ca.key";
/// A node's certificate.
pub const NODE_CERT_FILE: &str = "node.pem";
/// A node's private key, mode 0600.
pub const NODE_KEY_FILE: &str = "node.key";

/// Prefix of the URI SAN carrying a node's role.
pub const ROLE_URI_PREFIX: &str = "urn:yiwang:role:";
/// Prefix of the URI SAN carrying a node's id.
pub const NODE_URI_PREFIX: &str = "urn:yiwang:node:";
/// Organisation name in every subject.
pub const ORGANISATION: &str = "yiwang";
/// Common name of a CA made without one.
pub const DEFAULT_CA_NAME: &str = "yiwang city CA";
/// Default lifetime of the city CA: ten years.
pub const DEFAULT_CA_DAYS: u32 = 3650;
/// Default lifetime of a node certificate: about 13 months, so a yearly rotation has slack.
pub const DEFAULT_NODE_DAYS: u32 = 397;
/// Longest lifetime accepted for anything.
pub const MAX_DAYS: u32 = 36_500;
/// Certificates start this long before `now`, so a node whose clock runs a little behind the
/// machine that issued its certificate does not see it as not yet valid.
pub const BACKDATE: Duration = Duration::hours(1);
/// Largest PEM file read: a certificate is about 1 KiB, a CA bundle a few.
pub const MAX_PEM_BYTES: u64 = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is {size} bytes; the limit for a PEM file is {MAX_PEM_BYTES}")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} already exists; refusing to overwrite it")]
    Exists { path: PathBuf },
    #[error("{what}: {message}")]
    Pem { what: String, message: String },
    #[error("bad certificate: {0}")]
    BadCertificate(String),
    #[error("bad key: {0}")]
    BadKey(String),
    #[error("node id {id:?} cannot name a certificate: {reason}")]
    BadName { id: String, reason: String },
    #[error("bad validity: {0}")]
    BadValidity(String),
    #[error("the CA: {0}")]
    BadCa(String),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// When a certificate is valid, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From [`BACKDATE`] before `now` to `days` days after `now`.
    pub fn days_from(now: OffsetDateTime, days: u32) -> Result<Validity, PkiError> {
        if days == 0 || days > MAX_DAYS {
            return Err(PkiError::BadValidity(format!("{days} days: expected 1 to {MAX_DAYS}")));
        }
        Validity::between(now - BACKDATE, now + Duration::days(i64::from(days)))
    }

    /// Explicit bounds (for instance an already expired certificate in a test).
    pub fn between(not_before: OffsetDateTime, not_after: OffsetDateTime) -> Result<Validity, PkiError> {
        let (not_before, not_after) = (whole_seconds(not_before), whole_seconds(not_after));
        if not_before >= not_after {
            return Err(PkiError::BadValidity(format!("not_before {not_before} is not before not_after {not_after}")));
        }
        if not_before.year() < 1950 || not_after.year() > 9999 {
            return Err(PkiError::BadValidity("dates must lie between 1950 and 9999".into()));
        }
        Ok(Validity { not_before, not_after })
    }

    pub fn contains(&self, t: OffsetDateTime) -> bool {
        self.not_before <= t && t <= self.not_after
    }
}

fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).expect("0 ns is valid")
}

/// Whether `id` can be the DNS name of a certificate that rustls and webpki accept: besides
/// being a valid [`NodeId`], every dot-separated label is non-empty, starts and ends without a
/// hyphen, and the last label is not all digits.
pub fn check_cert_name(id: &NodeId) -> Result<(), PkiError> {
    let bad = |reason: &str| PkiError::BadName { id: id.to_string(), reason: reason.into() };
    if id.as_str().ends_with('.') {
        return Err(bad("it ends with '.'"));
    }
    DnsName::try_from(id.as_str()).map_err(|_| {
        bad("it is not a DNS name (labels between dots must be non-empty, must not start or end with '-', \
             and the last label must not be a number)")
    })?;
    Ok(())
}

/// The kind of key a CA and the node certificates it issues use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256: what deployments use, by every TLS stack understood.
    #[default]
    EcdsaP256,
    /// Ed25519: signatures of fixed length and made without a random nonce, so a handshake's
    /// datagrams have the same lengths every time. The simulator uses it for replayable runs.
    Ed25519,
}

impl KeyAlgorithm {
    fn generate(self) -> Result<KeyPair, PkiError> {
        Ok(match self {
            KeyAlgorithm::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
            KeyAlgorithm::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519)?,
        })
    }

    fn of(key: &KeyPair) -> KeyAlgorithm {
        if key.algorithm() == &rcgen::PKCS_ED25519 {
            KeyAlgorithm::Ed25519
        } else {
            KeyAlgorithm::EcdsaP256
        }
    }
}

/// The city CA: its certificate and the key that signs node certificates.
pub struct CityCa {
    issuer: Issuer<'static, KeyPair>,
    algorithm: KeyAlgorithm,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
}

impl std::fmt::Debug for CityCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CityCa").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

impl CityCa {
    /// A new self-signed CA with common name `name` (organisation [`ORGANISATION`]) and a fresh
    /// ECDSA P-256 key. It may sign node certificates only (path length 0).
    pub fn generate(name: &str, validity: Validity) -> Result<CityCa, PkiError> {
        CityCa::generate_with(name, validity, KeyAlgorithm::EcdsaP256)
    }

    /// [`CityCa::generate`] with keys of `algorithm`, for the CA and every certificate it issues.
    pub fn generate_with(name: &str, validity: Validity, algorithm: KeyAlgorithm) -> Result<CityCa, PkiError> {
        if name.trim().is_empty() || name.len() > 64 {
            return Err(PkiError::BadCa(format!("name {name:?} must be 1 to 64 bytes")));
        }
        let key = algorithm.generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.distinguished_name.push(DnType::OrganizationName, ORGANISATION);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = ca_key_usages();
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key)?;
        Ok(CityCa { cert_pem: cert.pem(), cert_der: cert.der().clone(), issuer: Issuer::new(params, key), algorithm })
    }

    /// A CA from its certificate and key, as written by [`CityCa::write`]. Refuses a
    /// certificate that is not a CA and a key that does not belong to it.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<CityCa, PkiError> {
        let cert_der = parse_certs_pem(cert_pem, "CA certificate")?.swap_remove(0);
        let key_der = parse_key_pem(key_pem, "CA key")?;
        let key = KeyPair::try_from(&key_der).map_err(|e| PkiError::BadKey(format!("CA key: {e}")))?;
        let (_, cert) = parse_cert(&cert_der)?;
        if !cert.is_ca() {
            return Err(PkiError::BadCa("the certificate is not a CA certificate".into()));
        }
        if key.subject_public_key_info() != cert.public_key().raw {
            return Err(PkiError::BadCa("the key does not belong to the certificate".into()));
        }
        // An issuer needs the CA's subject (copied into every certificate it signs, compared
        // byte for byte by verifiers) and key identifier; rebuild them from the certificate.
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        for attr in cert.subject().iter_attributes() {
            let oid: Vec<u64> = attr
                .attr_type()
                .iter()
                .ok_or_else(|| PkiError::BadCa("subject has an attribute with an oversized OID".into()))?
                .collect();
            let text = attr.as_str().map_err(|e| PkiError::BadCa(format!("subject: {e}")))?;
            let value = match attr.attr_value().tag() {
                x509_parser::asn1_rs::Tag::PrintableString => {
                    DnValue::PrintableString(text.try_into().map_err(|e| PkiError::BadCa(format!("subject: {e}")))?)
                }
                _ => DnValue::Utf8String(text.to_string()),
            };
            params.distinguished_name.push(DnType::from_oid(&oid), value);
        }
        for ext in cert.extensions() {
            if let ParsedExtension::SubjectKeyIdentifier(ski) = ext.parsed_extension() {
                params.key_identifier_method = KeyIdMethod::PreSpecified(ski.0.to_vec());
            }
        }
        params.key_usages = ca_key_usages();
        let cert_pem = pem_encode("CERTIFICATE", &cert_der);
        let algorithm = KeyAlgorithm::of(&key);
        Ok(CityCa { issuer: Issuer::new(params, key), algorithm, cert_der, cert_pem })
    }

    /// Reads `dir/ca.pem` and `dir/ca.key`.
    pub fn load(dir: &Path) -> Result<CityCa, PkiError> {
        let cert = read_pem_file(&dir.join(CA_CERT_FILE))?;
        let key = read_pem_file(&dir.join(CA_KEY_FILE))?;
        CityCa::from_pem(&cert, &key).map_err(|e| match e {
            PkiError::Pem { what, message } => PkiError::Pem { what: format!("{what} in {}", dir.display()), message },
            PkiError::BadCa(m) => PkiError::BadCa(format!("{}: {m}", dir.display())),
            e => e,
        })
    }

    /// Writes `dir/ca.pem` and `dir/ca.key` (mode 0600), creating `dir`. Without `overwrite`
    /// nothing is written if either file exists.
    pub fn write(&self, dir: &Path, overwrite: bool) -> Result<(), PkiError> {
        let key_pem = self.issuer.key().serialize_pem();
        write_files(
            dir,
            &[(CA_CERT_FILE, self.cert_pem.as_bytes(), false), (CA_KEY_FILE, key_pem.as_bytes(), true)],
            overwrite,
        )
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Issues a certificate for `identity` with a fresh key.
    pub fn issue(&self, identity: &NodeIdentity, validity: Validity) -> Result<NodeCert, PkiError> {
        check_cert_name(&identity.id)?;
        let (_, ca) = parse_cert(&self.cert_der)?;
        let ca_validity = (ca.validity().not_before.to_datetime(), ca.validity().not_after.to_datetime());
        if validity.not_before < ca_validity.0 || validity.not_after > ca_validity.1 {
            return Err(PkiError::BadValidity(format!(
                "{} to {} is not within the CA's validity, {} to {}",
                validity.not_before, validity.not_after, ca_validity.0, ca_validity.1
            )));
        }
        let id = identity.id.as_str();
        let key = self.algorithm.generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, id);
        params.distinguished_name.push(DnType::OrganizationName, ORGANISATION);
        params.distinguished_name.push(DnType::OrganizationalUnitName, identity.role.as_str());
        params.subject_alt_names = vec![
            SanType::DnsName(id.try_into()?),
            SanType::URI(format!("{NODE_URI_PREFIX}{id}").try_into()?),
            SanType::URI(format!("{ROLE_URI_PREFIX}{}", identity.role).try_into()?),
        ];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.serial_number = Some(random_serial()?);
        let cert = params.signed_by(&key, &self.issuer)?;
        let (_, leaf) = parse_cert(cert.der())?;
        if leaf.issuer().as_raw() != ca.subject().as_raw() {
            return Err(PkiError::BadCa(
                "its subject name cannot be reproduced exactly, so certificates it signed would not chain to it \
                 (was it made by `yiwangctl pki init`?)"
                    .into(),
            ));
        }
        Ok(NodeCert {
            identity: identity.clone(),
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn ca_key_usages() -> Vec<KeyUsagePurpose> {
    vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature]
}

fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| PkiError::BadKey(format!("no randomness for a serial number: {e}")))?;
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // and full length
    Ok(SerialNumber::from_slice(&bytes))
}

/// A node's certificate and key, fresh from [`CityCa::issue`].
pub struct NodeCert {
    identity: NodeIdentity,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for NodeCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCert").field("identity", &self.identity).finish_non_exhaustive()
    }
}

impl NodeCert {
    pub fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        parse_key_pem(self.key_pem.as_bytes(), "node key").expect("our own key PEM parses")
    }

    /// Writes `dir/node.pem`, `dir/node.key` (mode 0600) and `dir/ca.pem` (the CA that signed
    /// it, so the directory is all a node needs), creating `dir`. Without `overwrite` nothing
    /// is written if any of them exists, except a `ca.pem` that already holds exactly `ca_pem`.
    pub fn write(&self, dir: &Path, ca_pem: &str, overwrite: bool) -> Result<(), PkiError> {
        let ca_path = dir.join(CA_CERT_FILE);
        let same_ca = std::fs::read(&ca_path).map(|b| b == ca_pem.as_bytes()).unwrap_or(false);
        let mut files =
            vec![(NODE_CERT_FILE, self.cert_pem.as_bytes(), false), (NODE_KEY_FILE, self.key_pem.as_bytes(), true)];
        if !same_ca {
            files.push((CA_CERT_FILE, ca_pem.as_bytes(), false));
        }
        write_files(dir, &files, overwrite)
    }
}

/// Writes each `(name, contents, secret)` into `dir`, secrets with mode 0600, each through a
/// temporary file renamed into place.
fn write_files(dir: &Path, files: &[(&str, &[u8], bool)], overwrite: bool) -> Result<(), PkiError> {
    if !overwrite {
        for (name, _, _) in files {
            let path = dir.join(name);
            if path.exists() {
                return Err(PkiError::Exists { path });
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Write { path: dir.to_path_buf(), source })?;
    for (name, contents, secret) in files {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let write = || -> std::io::Result<()> {
            let _ = std::fs::remove_file(&tmp);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(if *secret { 0o600 } else { 0o644 });
            }
            let mut f = options.open(&tmp)?;
            f.write_all(contents)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            PkiError::Write { path: path.clone(), source }
        })?;
    }
    Ok(())
}

/// Reads a PEM file of at most [`MAX_PEM_BYTES`].
pub fn read_pem_file(path: &Path) -> Result<Vec<u8>, PkiError> {
    let read_err = |source| PkiError::Read { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.len() > MAX_PEM_BYTES {
        return Err(PkiError::TooLarge { path: path.to_path_buf(), size: meta.len() });
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(PkiError::TooLarge { path: path.to_path_buf(), size: bytes.len() as u64 });
    }
    Ok(bytes)
}

/// Every certificate in PEM text; at least one. `what` names the input in errors.
pub fn parse_certs_pem(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Pem { what: what.into(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(PkiError::Pem { what: what.into(), message: "no CERTIFICATE block found".into() });
    }
    Ok(certs)
}

/// The first private key in PEM text (PKCS#8, SEC1 or PKCS#1).
pub fn parse_key_pem(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        let message = match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY block found".to_string(),
            e => e.to_string(),
        };
        PkiError::Pem { what: what.into(), message }
    })
}

/// Every certificate in a PEM file.
/// A certificate's fingerprint: the lowercase hex SHA-256 of its DER, as revocations name it.
pub fn fingerprint(der: &CertificateDer<'_>) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(der.as_ref()).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    parse_certs_pem(&read_pem_file(path)?, &path.display().to_string())
}

/// The private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    parse_key_pem(&read_pem_file(path)?, &path.display().to_string())
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    // Base64 (RFC 4648, with padding) in 64-column lines, as every PEM writer does.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len() * 4 / 3 + 4);
    for chunk in der.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn parse_cert(der: &[u8]) -> Result<(&[u8], x509_parser::certificate::X509Certificate<'_>), PkiError> {
    let (rest, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::BadCertificate(format!("not X.509: {e}")))?;
    if !rest.is_empty() {
        return Err(PkiError::BadCertificate(format!("{} bytes of trailing data", rest.len())));
    }
    Ok((rest, cert))
}

/// The node identity a certificate names: its one DNS name as the id and its one
/// `urn:yiwang:role:` URI as the role. Refuses a CA certificate, a certificate with no or
/// several DNS names or roles, and one whose `urn:yiwang:node:` URI names another node.
/// Checks no signature or date: use it on certificates the TLS layer has verified.
pub fn cert_identity(der: &[u8]) -> Result<NodeIdentity, PkiError> {
    let (_, cert) = parse_cert(der)?;
    identity_of(&cert)
}

fn identity_of(cert: &x509_parser::certificate::X509Certificate<'_>) -> Result<NodeIdentity, PkiError> {
    let bad = |m: String| PkiError::BadCertificate(m);
    if cert.is_ca() {
        return Err(bad("it is a CA certificate, not a node certificate".into()));
    }
    let san = cert
        .subject_alternative_name()
        .map_err(|e| bad(format!("subject alternative names: {e}")))?
        .ok_or_else(|| bad("it has no subject alternative names".into()))?;
    let (mut dns, mut roles, mut node_uris) = (Vec::new(), Vec::new(), Vec::new());
    for name in &san.value.general_names {
        match name {
            GeneralName::DNSName(d) => dns.push(*d),
            GeneralName::URI(u) => {
                if let Some(r) = u.strip_prefix(ROLE_URI_PREFIX) {
                    roles.push(r);
                } else if let Some(n) = u.strip_prefix(NODE_URI_PREFIX) {
                    node_uris.push(n);
                }
            }
            _ => {}
        }
    }
    let [dns] = dns[..] else {
        return Err(bad(format!("it must carry exactly one DNS name (the node id), not {}", dns.len())));
    };
    let id = NodeId::new(dns).map_err(|e| bad(format!("DNS name {dns:?} is not a node id: {e}")))?;
    let [role] = roles[..] else {
        return Err(bad(format!("it must carry exactly one {ROLE_URI_PREFIX}<role> URI, not {}", roles.len())));
    };
    let role: Role = role.parse().map_err(|e| bad(format!("{e}")))?;
    if let Some(other) = node_uris.iter().find(|n| **n != dns) {
        return Err(bad(format!("its DNS name {dns:?} and its {NODE_URI_PREFIX} URI {other:?} disagree")));
    }
    Ok(NodeIdentity { id, role })
}

/// What `yiwangctl pki show` prints about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// Hex, colon-separated.
    pub serial: String,
    pub validity: Validity,
    pub is_ca: bool,
    /// The node a node certificate names; `None` for a CA.
    pub identity: Option<NodeIdentity>,
}

impl CertInfo {
    pub fn parse(der: &[u8]) -> Result<CertInfo, PkiError> {
        let (_, cert) = parse_cert(der)?;
        let identity = if cert.is_ca() { None } else { Some(identity_of(&cert)?) };
        Ok(CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial: cert.raw_serial_as_string(),
            validity: Validity {
                not_before: cert.validity().not_before.to_datetime(),
                not_after: cert.validity().not_after.to_datetime(),
            },
            is_ca: cert.is_ca(),
            identity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap()
    }

    fn ident(id: &str, role: Role) -> NodeIdentity {
        NodeIdentity { id: NodeId::new(id).unwrap(), role }
    }

    fn ca() -> CityCa {
        CityCa::generate(DEFAULT_CA_NAME, Validity::days_from(now(), 3650).unwrap()).unwrap()
    }

    #[test]
    fn a_node_certificate_names_its_node_and_role() {
        let ca = ca();
        for role in Role::ALL {
            let cert = ca.issue(&ident("town-zhangjiachan", role), Validity::days_from(now(), 30).unwrap()).unwrap();
            assert_eq!(cert_identity(cert.cert_der()).unwrap(), ident("town-zhangjiachan", role));
            let info = CertInfo::parse(cert.cert_der()).unwrap();
            assert!(!info.is_ca);
            assert!(info.issuer.contains(DEFAULT_CA_NAME), "{}", info.issuer);
            assert!(info.subject.contains("town-zhangjiachan"), "{}", info.subject);
            assert_eq!(info.validity.not_after, now().replace_nanosecond(0).unwrap() + Duration::days(30));
            assert_eq!(info.validity.not_before, now().replace_nanosecond(0).unwrap() - BACKDATE);
        }
        let info = CertInfo::parse(ca.cert_der()).unwrap();
        assert!(info.is_ca);
        assert_eq!(info.identity, None);
        assert!(cert_identity(ca.cert_der()).unwrap_err().to_string().contains("CA certificate"));
    }

    #[test]
    fn serial_numbers_differ() {
        let ca = ca();
        let v = Validity::days_from(now(), 1).unwrap();
        let a = CertInfo::parse(ca.issue(&ident("a", Role::Town), v).unwrap().cert_der()).unwrap();
        let b = CertInfo::parse(ca.issue(&ident("a", Role::Town), v).unwrap().cert_der()).unwrap();
        assert_ne!(a.serial, b.serial);
    }

    #[test]
    fn names_that_cannot_be_dns_names_are_refused() {
        let ca = ca();
        let v = Validity::days_from(now(), 1).unwrap();
        for id in ["123", "a..b", "-a", "a-", "a.", ".a", "town.-x", "0x1f"] {
            let err = ca.issue(&ident(id, Role::Town), v).unwrap_err();
            assert!(matches!(err, PkiError::BadName { .. }), "{id}: {err}");
        }
        for id in ["city", "town_a", "town-1.harbour", "a"] {
            ca.issue(&ident(id, Role::Town), v).unwrap();
        }
    }

    #[test]
    fn validity_is_checked() {
        assert!(Validity::days_from(now(), 0).is_err());
        assert!(Validity::days_from(now(), MAX_DAYS + 1).is_err());
        assert!(Validity::between(now(), now()).is_err());
        let ca = ca();
        let too_long = Validity::days_from(now(), 3651).unwrap();
        let err = ca.issue(&ident("a", Role::Town), too_long).unwrap_err();
        assert!(err.to_string().contains("within the CA's validity"), "{err}");
    }

    #[test]
    fn files_round_trip_with_private_keys_private() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca();
        ca.write(dir.path(), false).unwrap();
        let err = ca.write(dir.path(), false).unwrap_err();
        assert!(matches!(err, PkiError::Exists { .. }), "{err}");
        ca.write(dir.path(), true).unwrap();

        let loaded = CityCa::load(dir.path()).unwrap();
        assert_eq!(loaded.cert_pem(), ca.cert_pem());
        assert_eq!(loaded.cert_der(), ca.cert_der());
        // A CA read back from disk signs certificates that chain to the original.
        let cert =
            loaded.issue(&ident("county-wendeng", Role::County), Validity::days_from(now(), 5).unwrap()).unwrap();
        let node_dir = dir.path().join("node");
        cert.write(&node_dir, ca.cert_pem(), false).unwrap();
        assert!(cert.write(&node_dir, ca.cert_pem(), false).is_err());
        // A ca.pem identical to ours is no conflict.
        std::fs::remove_file(node_dir.join(NODE_CERT_FILE)).unwrap();
        std::fs::remove_file(node_dir.join(NODE_KEY_FILE)).unwrap();
        cert.write(&node_dir, ca.cert_pem(), false).unwrap();

        let certs = load_certs(&node_dir.join(NODE_CERT_FILE)).unwrap();
        assert_eq!(cert_identity(&certs[0]).unwrap(), ident("county-wendeng", Role::County));
        load_key(&node_dir.join(NODE_KEY_FILE)).unwrap();
        assert_eq!(load_certs(&node_dir.join(CA_CERT_FILE)).unwrap()[0], *ca.cert_der());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.path().join(CA_KEY_FILE)), 0o600);
            assert_eq!(mode(&node_dir.join(NODE_KEY_FILE)), 0o600);
            assert_eq!(mode(&node_dir.join(NODE_CERT_FILE)), 0o644);
        }
        let leftovers: Vec<_> = std::fs::read_dir(&node_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn mismatched_or_broken_files_are_refused() {
        let (a, b) = (ca(), ca());
        let a_key = a.issuer.key().serialize_pem();
        let b_key = b.issuer.key().serialize_pem();
        let err = CityCa::from_pem(a.cert_pem().as_bytes(), b_key.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("does not belong"), "{err}");
        CityCa::from_pem(a.cert_pem().as_bytes(), a_key.as_bytes()).unwrap();
        let err = CityCa::from_pem(b"hello", a_key.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
        let err = CityCa::from_pem(a.cert_pem().as_bytes(), a.cert_pem().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("no PRIVATE KEY"), "{err}");
        let node = a.issue(&ident("t", Role::Town), Validity::days_from(now(), 1).unwrap()).unwrap();
        let err = CityCa::from_pem(node.cert_pem().as_bytes(), node.key_pem().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("not a CA"), "{err}");
        assert!(cert_identity(b"\x30\x03\x02\x01\x01").is_err());
        let mut der = node.cert_der().to_vec();
        der.push(0);
        assert!(cert_identity(&der).unwrap_err().to_string().contains("trailing"));

        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'a'; MAX_PEM_BYTES as usize + 1]).unwrap();
        assert!(matches!(load_certs(&big), Err(PkiError::TooLarge { .. })));
        assert!(matches!(load_certs(&dir.path().join("none.pem")), Err(PkiError::Read { .. })));
    }

    #[test]
    fn foreign_certificates_without_our_names_are_refused() {
        let key = KeyPair::generate().unwrap();
        let plain = CertificateParams::new(vec!["town-a".to_string()]).unwrap().self_signed(&key).unwrap();
        let err = cert_identity(plain.der()).unwrap_err();
        assert!(err.to_string().contains(ROLE_URI_PREFIX), "{err}");
        let mut two = CertificateParams::new(vec!["town-a".to_string(), "town-b".to_string()]).unwrap();
        two.subject_alt_names.push(SanType::URI("urn:yiwang:role:town".try_into().unwrap()));
        let err = cert_identity(two.self_signed(&key).unwrap().der()).unwrap_err();
        assert!(err.to_string().contains("exactly one DNS name"), "{err}");
        let mut liar = CertificateParams::new(vec!["town-a".to_string()]).unwrap();
        liar.subject_alt_names.push(SanType::URI("urn:yiwang:role:town".try_into().unwrap()));
        liar.subject_alt_names.push(SanType::URI("urn:yiwang:node:city".try_into().unwrap()));
        let err = cert_identity(liar.self_signed(&key).unwrap().der()).unwrap_err();
        assert!(err.to_string().contains("disagree"), "{err}");
        let mut mayor = CertificateParams::new(vec!["town-a".to_string()]).unwrap();
        mayor.subject_alt_names.push(SanType::URI("urn:yiwang:role:mayor".try_into().unwrap()));
        let err = cert_identity(mayor.self_signed(&key).unwrap().der()).unwrap_err();
        assert!(err.to_string().contains("mayor"), "{err}");
    }

    #[test]
    fn an_ed25519_ca_issues_ed25519_certificates_of_fixed_length() {
        let validity = Validity::days_from(now(), 30).unwrap();
        let ca = CityCa::generate_with(DEFAULT_CA_NAME, validity, KeyAlgorithm::Ed25519).unwrap();
        let lengths: Vec<usize> = (0..8)
            .map(|_| {
                let cert = ca.issue(&ident("harbour-shidao", Role::Harbour), validity).unwrap();
                assert_eq!(cert_identity(cert.cert_der()).unwrap(), ident("harbour-shidao", Role::Harbour));
                let key = KeyPair::try_from(&cert.key_der()).unwrap();
                assert_eq!(KeyAlgorithm::of(&key), KeyAlgorithm::Ed25519);
                cert.cert_der().len()
            })
            .collect();
        assert!(lengths.windows(2).all(|w| w[0] == w[1]), "Ed25519 certificates vary in length: {lengths:?}");
        // Read back from PEM, the CA keeps its algorithm.
        let key_pem = ca.issuer.key().serialize_pem();
        let loaded = CityCa::from_pem(ca.cert_pem().as_bytes(), key_pem.as_bytes()).unwrap();
        assert_eq!(loaded.algorithm, KeyAlgorithm::Ed25519);
        assert_eq!(ca.algorithm, KeyAlgorithm::Ed25519);
        assert_eq!(CityCa::generate(DEFAULT_CA_NAME, validity).unwrap().algorithm, KeyAlgorithm::EcdsaP256);
    }

    #[test]
    fn pem_encoding_matches_the_parser() {
        for len in 0..70 {
            let der: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let pem = pem_encode("CERTIFICATE", &der);
            if len > 0 {
                assert_eq!(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().as_ref(), &der[..]);
            }
        }
        let ca = ca();
        assert_eq!(pem_encode("CERTIFICATE", ca.cert_der()), ca.cert_pem());
    }
}
