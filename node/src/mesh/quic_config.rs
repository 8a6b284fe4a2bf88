//! One node's quinn configuration, taking time and randomness from the instance: certificate
//! dates checked against the node's clock, and every random draw quinn makes (stateless-reset
//! key, handshake-token key, the endpoint's RNG that seeds each connection's, connection ids)
//! from the node's seed. With the same seed and the same clock a simulated mesh replays.
//!
//! What stays random: rustls makes key-exchange keys with ring's own `SystemRandom`, and
//! ECDSA signatures draw a nonce. Neither changes a datagram's length with Ed25519
//! certificates (fixed-length signatures), which is what the simulator uses; the bytes differ,
//! which is why its trace hashes datagram lengths and timing, not contents.

use super::tls::{self, MeshIdentity, TlsError};
use crate::clock::SharedClock;
use crate::rng::{Rng, Seed};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{ConnectionId, ConnectionIdGenerator};
use rustls::time_provider::TimeProvider;
use rustls_pki_types::UnixTime;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length of the connection ids a node issues (quinn's default).
const CID_LEN: usize = 8;

/// The node's clock as rustls and quinn read time.
#[derive(Clone)]
pub struct ClockTime(pub SharedClock);

impl std::fmt::Debug for ClockTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClockTime({} ms)", self.0.now_ms())
    }
}

impl TimeProvider for ClockTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(Duration::from_millis(self.0.now_ms())))
    }
}

impl quinn::TimeSource for ClockTime {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0.now_ms())
    }
}

/// Connection ids from a seeded generator: they only need to differ and to carry nothing an
/// observer could link (a mesh peer learns nothing from them it does not know already).
struct SeededCids {
    rng: Rng,
}

impl ConnectionIdGenerator for SeededCids {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut bytes = [0u8; CID_LEN];
        self.rng.fill(&mut bytes);
        ConnectionId::new(&bytes)
    }

    fn cid_len(&self) -> usize {
        CID_LEN
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

/// The endpoint's configuration: reset key, RNG and connection ids from `seed`.
pub fn endpoint_config(seed: Seed) -> quinn::EndpointConfig {
    let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &seed.derive_bytes("quinn reset key"));
    let mut config = quinn::EndpointConfig::new(Arc::new(reset_key));
    config.rng_seed(Some(seed.derive_bytes("quinn rng")));
    // quinn asks the factory once per endpoint; a counter keeps any later call distinct.
    let made = Arc::new(AtomicU64::new(0));
    config.cid_generator(move || {
        let n = made.fetch_add(1, Ordering::Relaxed);
        Box::new(SeededCids { rng: seed.derive(&format!("quinn connection ids {n}")).rng("cids") })
    });
    config
}

/// The server side: client certificates checked against the node's clock, handshake tokens
/// keyed from `seed`. Address-validation tokens are not sent: mesh peers are few, known and
/// authenticated by certificate, and a token a client stores is state the simulator would
/// have to replay too.
pub fn server_config(
    identity: &MeshIdentity,
    clock: &SharedClock,
    seed: Seed,
    transport: quinn::TransportConfig,
) -> Result<quinn::ServerConfig, TlsError> {
    let time = ClockTime(clock.clone());
    let tls = tls::rustls_server_config(identity, Arc::new(time.clone()))?;
    let quic = QuicServerConfig::try_from(tls).map_err(|_| TlsError::NoInitialCipherSuite)?;
    let master = seed.derive_bytes("quinn token key");
    let token_key = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &[]).extract(&master);
    let mut config = quinn::ServerConfig::new(Arc::new(quic), Arc::new(token_key));
    config.transport_config(Arc::new(transport));
    config.time_source(Arc::new(time));
    let mut validation = quinn::ValidationTokenConfig::default();
    validation.sent(0);
    config.validation_token_config(validation);
    Ok(config)
}

/// The client side: server certificates checked against the node's clock, no stored tokens.
pub fn client_config(
    identity: &MeshIdentity,
    clock: &SharedClock,
    transport: quinn::TransportConfig,
) -> Result<quinn::ClientConfig, TlsError> {
    let tls = tls::rustls_client_config(identity, Arc::new(ClockTime(clock.clone())))?;
    let quic = QuicClientConfig::try_from(tls).map_err(|_| TlsError::NoInitialCipherSuite)?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport));
    config.token_store(Arc::new(quinn::NoneTokenStore));
    Ok(config)
}
