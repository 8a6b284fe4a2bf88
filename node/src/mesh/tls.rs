//! TLS for the mesh: mutual TLS 1.3 over QUIC, every certificate checked against the city CA.
//!
//! - A node's [`MeshIdentity`] is the CA bundle, its certificate and its key (`ca.pem`,
//!   `node.pem`, `node.key`, see [`super::pki`]).
//! - [`server_config`] requires a client certificate signed by the CA; [`client_config`]
//!   verifies the server against the same CA and presents ours. A client dials a peer with the
//!   peer's node id as the server name, so only a certificate naming that node passes.
//! - Both sides learn who the other is only from its verified leaf certificate
//!   ([`peer_identity`]); nothing a peer sends about itself counts.
//! - Every config is built with the ring provider passed explicitly, never the process-wide
//!   default, so a second provider linked in by another crate cannot make rustls panic.
//! - TLS 1.3 only, ALPN [`ALPN`], no session resumption and no 0-RTT: connections are long
//!   lived, and every one of them starts from a certificate checked at that moment.

use super::pki::{self, PkiError};
use proto::{NodeId, NodeIdentity, Role};
use quinn::crypto::rustls::{HandshakeData, QuicClientConfig, QuicServerConfig};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::time_provider::{DefaultTimeProvider, TimeProvider};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// The application protocol spoken on mesh connections.
pub use proto::wire::ALPN;
/// Keep-alive on every mesh connection, well below [`IDLE_TIMEOUT`].
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// A connection that hears nothing (not even keep-alives) for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("mesh identity: {0}")]
    Identity(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("the crypto provider lacks TLS13_AES_128_GCM_SHA256, which QUIC needs")]
    NoInitialCipherSuite,
    #[error("the connection has no verified peer certificate")]
    NoPeerCertificate,
    #[error("peer certificate: {0}")]
    PeerCertificate(PkiError),
    #[error("dialled {expected} but the peer's certificate names {found}")]
    WrongPeer { expected: NodeId, found: NodeId },
    #[error("cannot connect to {peer} at {addr}: {source}")]
    Connect { peer: NodeId, addr: SocketAddr, source: quinn::ConnectError },
    #[error("connection with {peer}: {source}")]
    Connection { peer: String, source: quinn::ConnectionError },
}

/// What a node proves itself with on the mesh: the CA certificates it trusts (more than one
/// during a CA rollover), its certificate chain (the leaf first) and its private key.
#[derive(Debug)]
pub struct MeshIdentity {
    ca: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    identity: NodeIdentity,
    not_after: OffsetDateTime,
}

impl Clone for MeshIdentity {
    fn clone(&self) -> Self {
        MeshIdentity {
            ca: self.ca.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            identity: self.identity.clone(),
            not_after: self.not_after,
        }
    }
}

impl MeshIdentity {
    /// Reads `ca.pem`, `node.pem` and `node.key` (any paths), then checks them as
    /// [`MeshIdentity::from_der`] does.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<MeshIdentity, TlsError> {
        MeshIdentity::from_der(pki::load_certs(ca)?, pki::load_certs(cert)?, pki::load_key(key)?)
    }

    /// From PEM text held in memory.
    pub fn from_pem(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<MeshIdentity, TlsError> {
        MeshIdentity::from_der(
            pki::parse_certs_pem(ca_pem, "CA certificate")?,
            pki::parse_certs_pem(cert_pem, "node certificate")?,
            pki::parse_key_pem(key_pem, "node key")?,
        )
    }

    /// Checks that each CA certificate is one, that the leaf names a node ([`pki::cert_identity`]),
    /// that the key belongs to the leaf, and that the leaf is signed by one of the CAs at some
    /// moment both are valid. It does not refuse an expired certificate (handshakes will, and
    /// [`MeshIdentity::not_after`] tells when): a node keeps working locally without the mesh.
    pub fn from_der(
        ca: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<MeshIdentity, TlsError> {
        let bad = |m: String| TlsError::Identity(m);
        if ca.is_empty() {
            return Err(bad("no CA certificate".into()));
        }
        let leaf = chain.first().ok_or_else(|| bad("no node certificate".into()))?;
        for c in &ca {
            let info = pki::CertInfo::parse(c).map_err(|e| bad(format!("CA certificate: {e}")))?;
            if !info.is_ca {
                return Err(bad(format!("{} in the CA file is not a CA certificate", info.subject)));
            }
        }
        let identity = pki::cert_identity(leaf).map_err(|e| bad(format!("node certificate: {e}")))?;
        let provider = provider();
        let key_error = |e: rustls::Error| match e {
            rustls::Error::InconsistentKeys(_) => bad("the node key does not belong to the node certificate".into()),
            e => bad(format!("node key: {e}")),
        };
        let certified =
            rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider).map_err(key_error)?;
        certified.keys_match().map_err(key_error)?;

        // Verify the chain at a moment inside the validity of both the leaf and a CA, so a
        // certificate from another CA is caught here rather than at the first handshake.
        let leaf_validity = pki::CertInfo::parse(leaf)?.validity;
        let mut last_error = None;
        for c in &ca {
            let ca_validity = pki::CertInfo::parse(c)?.validity;
            let from = leaf_validity.not_before.max(ca_validity.not_before);
            if from > leaf_validity.not_after.min(ca_validity.not_after) {
                last_error = Some("its validity does not overlap the CA's".to_string());
                continue;
            }
            let mut roots = RootCertStore::empty();
            roots.add(c.clone()).map_err(|e| bad(format!("CA certificate: {e}")))?;
            let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
            let name = ServerName::try_from(identity.id.as_str().to_string()).map_err(|e| bad(e.to_string()))?;
            let at = UnixTime::since_unix_epoch(Duration::from_secs(from.unix_timestamp().max(0) as u64));
            match verifier.verify_server_cert(leaf, &chain[1..], &name, &[], at) {
                Ok(_) => {
                    last_error = None;
                    break;
                }
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        if let Some(e) = last_error {
            return Err(bad(format!("node certificate for {} does not verify against the CA: {e}", identity.id)));
        }
        Ok(MeshIdentity { ca, chain, key, identity, not_after: leaf_validity.not_after })
    }

    pub fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    pub fn id(&self) -> &NodeId {
        &self.identity.id
    }

    pub fn role(&self) -> Role {
        self.identity.role
    }

    /// When the node certificate expires; after that no peer accepts it.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    pub fn ca_certs(&self) -> &[CertificateDer<'static>] {
        &self.ca
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        for c in &self.ca {
            roots.add(c.clone())?;
        }
        Ok(Arc::new(roots))
    }
}

/// The ring provider; it includes TLS13_AES_128_GCM_SHA256, which QUIC's initial packets need.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Transport settings of every mesh connection: keep-alive [`KEEP_ALIVE`], idle timeout
/// [`IDLE_TIMEOUT`].
pub fn transport_config() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(KEEP_ALIVE));
    t.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(IDLE_TIMEOUT.as_millis() as u32))));
    t
}

/// The server side of mesh connections, checking certificate dates against the system clock.
pub fn server_config(identity: &MeshIdentity) -> Result<quinn::ServerConfig, TlsError> {
    server_config_with_time(identity, Arc::new(DefaultTimeProvider))
}

/// [`server_config`] with certificate dates checked against `time` (a simulator's clock).
pub fn server_config_with_time(
    identity: &MeshIdentity,
    time: Arc<dyn TimeProvider>,
) -> Result<quinn::ServerConfig, TlsError> {
    let tls = rustls_server_config(identity, time)?;
    let quic = QuicServerConfig::try_from(tls).map_err(|_| TlsError::NoInitialCipherSuite)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(Arc::new(transport_config()));
    Ok(config)
}

pub(super) fn rustls_server_config(
    identity: &MeshIdentity,
    time: Arc<dyn TimeProvider>,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(identity.roots()?, provider.clone()).build()?;
    let mut tls = rustls::ServerConfig::builder_with_details(provider, time)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    tls.send_tls13_tickets = 0;
    tls.max_early_data_size = 0;
    Ok(tls)
}

/// The client side of mesh connections, checking certificate dates against the system clock.
/// Dial with the peer's node id as the server name (see [`connect`]).
pub fn client_config(identity: &MeshIdentity) -> Result<quinn::ClientConfig, TlsError> {
    client_config_with_time(identity, Arc::new(DefaultTimeProvider))
}

/// [`client_config`] with certificate dates checked against `time` (a simulator's clock).
pub fn client_config_with_time(
    identity: &MeshIdentity,
    time: Arc<dyn TimeProvider>,
) -> Result<quinn::ClientConfig, TlsError> {
    let tls = rustls_client_config(identity, time)?;
    let quic = QuicClientConfig::try_from(tls).map_err(|_| TlsError::NoInitialCipherSuite)?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport_config()));
    Ok(config)
}

pub(super) fn rustls_client_config(
    identity: &MeshIdentity,
    time: Arc<dyn TimeProvider>,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = WebPkiServerVerifier::builder_with_provider(identity.roots()?, provider.clone()).build()?;
    let mut tls = rustls::ClientConfig::builder_with_details(provider, time)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.resumption = rustls::client::Resumption::disabled();
    tls.enable_early_data = false;
    Ok(tls)
}

/// The peer's id and role, read from the leaf certificate TLS verified on this connection.
pub fn peer_identity(conn: &quinn::Connection) -> Result<NodeIdentity, TlsError> {
    let any = conn.peer_identity().ok_or(TlsError::NoPeerCertificate)?;
    let certs = any.downcast::<Vec<CertificateDer<'static>>>().map_err(|_| TlsError::NoPeerCertificate)?;
    let leaf = certs.first().ok_or(TlsError::NoPeerCertificate)?;
    pki::cert_identity(leaf).map_err(TlsError::PeerCertificate)
}

/// The fingerprint ([`pki::fingerprint`]) of the peer's leaf certificate on this connection.
/// The application close code of a connection refused because the sanctions lists revoke the
/// peer's certificate (the mesh's and the voters' alike).
pub const REVOKED_CLOSE_CODE: u32 = 0x52;

pub fn peer_fingerprint(conn: &quinn::Connection) -> Option<String> {
    let any = conn.peer_identity()?;
    let certs = any.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    certs.first().map(pki::fingerprint)
}

/// The application protocol agreed on a connection.
pub fn negotiated_alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?.downcast::<HandshakeData>().ok()?.protocol
}

/// Dials `peer` at `addr` with `peer`'s id as the server name, so the handshake fails unless
/// the server's certificate names `peer`; returns the connection and the peer's identity as
/// its certificate states it.
pub async fn connect(
    endpoint: &quinn::Endpoint,
    config: quinn::ClientConfig,
    addr: SocketAddr,
    peer: &NodeId,
) -> Result<(quinn::Connection, NodeIdentity), TlsError> {
    let connecting = endpoint.connect_with(config, addr, peer.as_str()).map_err(|source| TlsError::Connect {
        peer: peer.clone(),
        addr,
        source,
    })?;
    let conn = connecting.await.map_err(|source| TlsError::Connection { peer: peer.to_string(), source })?;
    let identity = peer_identity(&conn)?;
    if identity.id != *peer {
        // rustls already checked the DNS name; a certificate holds only one, so this cannot
        // happen unless that check is bypassed.
        conn.close(quinn::VarInt::from_u32(0), b"wrong peer");
        return Err(TlsError::WrongPeer { expected: peer.clone(), found: identity.id });
    }
    Ok((conn, identity))
}

/// Completes an incoming connection and returns it with the client's identity from its
/// certificate.
pub async fn accept(incoming: quinn::Incoming) -> Result<(quinn::Connection, NodeIdentity), TlsError> {
    let remote = incoming.remote_address();
    let conn = incoming.await.map_err(|source| TlsError::Connection { peer: remote.to_string(), source })?;
    let identity = peer_identity(&conn)?;
    Ok((conn, identity))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::pki::{CityCa, Validity};
    use time::Duration as TimeDuration;

    fn ident(id: &str, role: Role) -> NodeIdentity {
        NodeIdentity { id: NodeId::new(id).unwrap(), role }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    /// A CA valid since well before the "expired" certificates below.
    fn ca() -> CityCa {
        let v = Validity::between(now() - TimeDuration::days(400), now() + TimeDuration::days(400)).unwrap();
        CityCa::generate("test city CA", v).unwrap()
    }

    fn fresh() -> Validity {
        Validity::days_from(now(), 30).unwrap()
    }

    fn expired() -> Validity {
        Validity::between(now() - TimeDuration::days(10), now() - TimeDuration::days(1)).unwrap()
    }

    /// Issues a certificate, writes it with pki's files into a tempdir and loads it back.
    fn identity(ca: &CityCa, who: &NodeIdentity, validity: Validity) -> MeshIdentity {
        let dir = tempfile::tempdir().unwrap();
        let cert = ca.issue(who, validity).unwrap();
        cert.write(dir.path(), ca.cert_pem(), false).unwrap();
        MeshIdentity::load(
            &dir.path().join(pki::CA_CERT_FILE),
            &dir.path().join(pki::NODE_CERT_FILE),
            &dir.path().join(pki::NODE_KEY_FILE),
        )
        .unwrap()
    }

    fn server(id: &MeshIdentity) -> quinn::Endpoint {
        quinn::Endpoint::server(server_config(id).unwrap(), "127.0.0.1:0".parse().unwrap()).unwrap()
    }

    fn client() -> quinn::Endpoint {
        quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap()
    }

    const LIMIT: Duration = Duration::from_secs(10);

    type Side = Result<(quinn::Connection, NodeIdentity), TlsError>;

    /// Runs one handshake and returns the server's outcome and the client's. A client whose
    /// certificate the server refuses may finish its side of the handshake first and only then
    /// see the connection closed: that counts as refused for the client too.
    async fn handshake(server_id: &MeshIdentity, client_config: quinn::ClientConfig, dial: &str) -> (Side, Side) {
        let server = server(server_id);
        let addr = server.local_addr().unwrap();
        let accepting = tokio::spawn(async move {
            let incoming = server.accept().await.expect("an incoming connection");
            // The endpoint goes back too, to outlive the connection.
            (accept(incoming).await, server)
        });
        let client = client();
        let dialled = tokio::time::timeout(LIMIT, connect(&client, client_config, addr, &NodeId::new(dial).unwrap()))
            .await
            .expect("the client finishes in time");
        let (accepted, _server) =
            tokio::time::timeout(LIMIT, accepting).await.expect("the server finishes in time").unwrap();
        let dialled = match (dialled, &accepted) {
            (Ok((conn, _)), Err(_)) => {
                let reason = tokio::time::timeout(LIMIT, conn.closed()).await.expect("the refusal reaches the client");
                Err(TlsError::Connection { peer: dial.into(), source: reason })
            }
            (dialled, _) => dialled,
        };
        for (conn, _) in [&accepted, &dialled].into_iter().flatten() {
            conn.close(quinn::VarInt::from_u32(0), b"done");
        }
        (accepted, dialled)
    }

    #[tokio::test]
    async fn a_handshake_tells_each_side_who_the_other_is() {
        let ca = ca();
        let county = identity(&ca, &ident("county-wendeng", Role::County), fresh());
        let town = identity(&ca, &ident("town-zhangjiachan", Role::Town), fresh());
        let server = server(&county);
        let addr = server.local_addr().unwrap();
        let accepting = tokio::spawn(async move {
            let (conn, who) = accept(server.accept().await.unwrap()).await.unwrap();
            let alpn = negotiated_alpn(&conn);
            let mut recv = conn.accept_uni().await.unwrap();
            let said = recv.read_to_end(100).await.unwrap();
            (who, alpn, said)
        });
        let client = client();
        let (conn, who) =
            connect(&client, client_config(&town).unwrap(), addr, &NodeId::new("county-wendeng").unwrap())
                .await
                .unwrap();
        assert_eq!(who, ident("county-wendeng", Role::County));
        assert_eq!(peer_identity(&conn).unwrap(), who);
        assert_eq!(negotiated_alpn(&conn).as_deref(), Some(ALPN));
        // What the client claims about itself is not what the server believes.
        let mut send = conn.open_uni().await.unwrap();
        send.write_all(b"I am the city").await.unwrap();
        send.finish().unwrap();
        let (server_saw, server_alpn, said) = tokio::time::timeout(LIMIT, accepting).await.unwrap().unwrap();
        assert_eq!(said, b"I am the city");
        assert_eq!(server_saw, ident("town-zhangjiachan", Role::Town));
        assert_eq!(server_alpn.as_deref(), Some(b"yiwang/2".as_slice()));
        conn.close(quinn::VarInt::from_u32(0), b"");
    }

    #[tokio::test]
    async fn a_client_certificate_from_another_ca_is_refused() {
        let (ours, theirs) = (ca(), ca());
        let county = identity(&ours, &ident("county-wendeng", Role::County), fresh());
        // A client trusting our CA (so it accepts the server) but holding a certificate from
        // another CA with the same name.
        let stranger = identity(&theirs, &ident("town-a", Role::Town), fresh());
        let mut mixed = stranger.clone();
        mixed.ca = county.ca.clone();
        let (server, client) = handshake(&county, client_config(&mixed).unwrap(), "county-wendeng").await;
        let err = server.unwrap_err().to_string();
        assert!(err.contains("UnknownIssuer") || err.contains("BadSignature"), "{err}");
        assert!(client.is_err());
        // And a server from another CA is refused by our client.
        let town = identity(&ours, &ident("town-a", Role::Town), fresh());
        let stranger_server = identity(&theirs, &ident("county-wendeng", Role::County), fresh());
        let (_, client) = handshake(&stranger_server, client_config(&town).unwrap(), "county-wendeng").await;
        let err = client.unwrap_err().to_string();
        assert!(err.contains("UnknownIssuer") || err.contains("BadSignature"), "{err}");
    }

    #[tokio::test]
    async fn an_expired_client_certificate_is_refused() {
        let ca = ca();
        let county = identity(&ca, &ident("county-wendeng", Role::County), fresh());
        let old_town = identity(&ca, &ident("town-a", Role::Town), expired());
        let (server, client) = handshake(&county, client_config(&old_town).unwrap(), "county-wendeng").await;
        let err = server.unwrap_err().to_string();
        assert!(err.to_lowercase().contains("expired"), "{err}");
        assert!(client.is_err());
    }

    #[tokio::test]
    async fn an_expired_server_certificate_is_refused() {
        let ca = ca();
        let old_county = identity(&ca, &ident("county-wendeng", Role::County), expired());
        let town = identity(&ca, &ident("town-a", Role::Town), fresh());
        let (server, client) = handshake(&old_county, client_config(&town).unwrap(), "county-wendeng").await;
        let err = client.unwrap_err().to_string();
        assert!(err.to_lowercase().contains("expired"), "{err}");
        assert!(server.is_err());
    }

    #[tokio::test]
    async fn a_server_naming_another_node_than_the_one_dialled_is_refused() {
        let ca = ca();
        let impostor = identity(&ca, &ident("county-rongcheng", Role::County), fresh());
        let town = identity(&ca, &ident("town-a", Role::Town), fresh());
        let (server, client) = handshake(&impostor, client_config(&town).unwrap(), "county-wendeng").await;
        let err = client.unwrap_err().to_string();
        assert!(err.contains("not valid for name \"county-wendeng\""), "{err}");
        assert!(server.is_err());
        // Dialled by its own name, the same server is fine.
        let (server, client) = handshake(&impostor, client_config(&town).unwrap(), "county-rongcheng").await;
        assert_eq!(server.unwrap().1, ident("town-a", Role::Town));
        assert_eq!(client.unwrap().1, ident("county-rongcheng", Role::County));
    }

    #[tokio::test]
    async fn clients_without_a_certificate_or_without_our_alpn_are_refused() {
        let ca = ca();
        let county = identity(&ca, &ident("county-wendeng", Role::County), fresh());
        let town = identity(&ca, &ident("town-a", Role::Town), fresh());
        let quic =
            |tls: rustls::ClientConfig| quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()));

        let anonymous = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_webpki_verifier(
                WebPkiServerVerifier::builder_with_provider(town.roots().unwrap(), provider()).build().unwrap(),
            )
            .with_no_client_auth();
        let mut anonymous_alpn = anonymous.clone();
        anonymous_alpn.alpn_protocols = vec![ALPN.to_vec()];
        let (server, client) = handshake(&county, quic(anonymous_alpn), "county-wendeng").await;
        let err = server.unwrap_err().to_string();
        assert!(err.to_lowercase().contains("certificate"), "{err}");
        assert!(client.is_err());

        let mut other_alpn = rustls_client_config(&town, Arc::new(DefaultTimeProvider)).unwrap();
        other_alpn.alpn_protocols = vec![b"h3".to_vec()];
        let (server, client) = handshake(&county, quic(other_alpn), "county-wendeng").await;
        let err = server.unwrap_err().to_string();
        assert!(err.to_lowercase().contains("application protocol") || err.contains("120"), "{err}");
        assert!(client.is_err());
    }

    #[test]
    fn configs_are_tls13_only_with_our_alpn_and_keep_alive_below_idle() {
        let ca = ca();
        let town = identity(&ca, &ident("town-a", Role::Town), fresh());
        let s = rustls_server_config(&town, Arc::new(DefaultTimeProvider)).unwrap();
        let c = rustls_client_config(&town, Arc::new(DefaultTimeProvider)).unwrap();
        assert_eq!(s.alpn_protocols, vec![ALPN.to_vec()]);
        assert_eq!(c.alpn_protocols, vec![ALPN.to_vec()]);
        assert!(s
            .crypto_provider()
            .cipher_suites
            .iter()
            .any(|cs| cs.suite() == rustls::CipherSuite::TLS13_AES_128_GCM_SHA256));
        assert!(KEEP_ALIVE * 3 <= IDLE_TIMEOUT);
        let _ = transport_config();
        server_config(&town).unwrap();
        client_config(&town).unwrap();
    }

    #[test]
    fn identities_that_cannot_work_are_refused_on_load() {
        let (ours, theirs) = (ca(), ca());
        let cert = ours.issue(&ident("town-a", Role::Town), fresh()).unwrap();
        let other = ours.issue(&ident("town-b", Role::Town), fresh()).unwrap();
        let ok =
            MeshIdentity::from_pem(ours.cert_pem().as_bytes(), cert.cert_pem().as_bytes(), cert.key_pem().as_bytes())
                .unwrap();
        assert_eq!(ok.identity(), &ident("town-a", Role::Town));
        assert_eq!(ok.not_after(), fresh().not_after);

        let err =
            MeshIdentity::from_pem(theirs.cert_pem().as_bytes(), cert.cert_pem().as_bytes(), cert.key_pem().as_bytes())
                .unwrap_err()
                .to_string();
        assert!(err.contains("does not verify against the CA"), "{err}");
        let err =
            MeshIdentity::from_pem(ours.cert_pem().as_bytes(), cert.cert_pem().as_bytes(), other.key_pem().as_bytes())
                .unwrap_err()
                .to_string();
        assert!(err.contains("does not belong"), "{err}");
        let err =
            MeshIdentity::from_pem(cert.cert_pem().as_bytes(), cert.cert_pem().as_bytes(), cert.key_pem().as_bytes())
                .unwrap_err()
                .to_string();
        assert!(err.contains("not a CA"), "{err}");
        let err =
            MeshIdentity::from_pem(ours.cert_pem().as_bytes(), ours.cert_pem().as_bytes(), cert.key_pem().as_bytes())
                .unwrap_err()
                .to_string();
        assert!(err.contains("node certificate"), "{err}");
        // During a CA rollover the bundle holds both CAs; either may have signed the leaf.
        let bundle = format!("{}{}", theirs.cert_pem(), ours.cert_pem());
        MeshIdentity::from_pem(bundle.as_bytes(), cert.cert_pem().as_bytes(), cert.key_pem().as_bytes()).unwrap();
    }
}
