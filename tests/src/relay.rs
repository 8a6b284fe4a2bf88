//! A UDP relay between two processes on loopback, which a test can cut: real packets over real
//! sockets, so QUIC sees exactly what a cut link does to it (nothing arrives), without network
//! namespaces. One relay carries one direction of dialling: A sends to the relay's front
//! address instead of B's; the relay sends on from its own back socket to B, and B's answers
//! go back the same way. A pair of sites that both dial each other needs two relays.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the relay's threads look at the stop flag while no datagram arrives.
const POLL: Duration = Duration::from_millis(50);

pub struct Relay {
    front: SocketAddr,
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    /// A relay to `target`; dial [`Relay::addr`] instead of `target`.
    pub fn new(target: SocketAddr) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").expect("relay front socket");
        let back = UdpSocket::bind("127.0.0.1:0").expect("relay back socket");
        back.connect(target).expect("relay target");
        for s in [&front, &back] {
            s.set_read_timeout(Some(POLL)).expect("read timeout");
        }
        let addr = front.local_addr().expect("relay address");
        let front = Arc::new(front);
        let back = Arc::new(back);
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        // The dialler's address, learnt from its first datagram: answers go there.
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let forward = {
            let (front, back, cut, stop, client) =
                (front.clone(), back.clone(), cut.clone(), stop.clone(), client.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = front.recv_from(&mut buf) {
                        *client.lock().unwrap() = Some(from);
                        if !cut.load(Ordering::Relaxed) {
                            let _ = back.send(&buf[..n]);
                        }
                    }
                }
            })
        };
        let backward = {
            let (cut, stop) = (cut.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = back.recv(&mut buf) {
                        let to = *client.lock().unwrap();
                        if let (Some(to), false) = (to, cut.load(Ordering::Relaxed)) {
                            let _ = front.send_to(&buf[..n], to);
                        }
                    }
                }
            })
        };
        Relay { front: addr, cut, stop, threads: vec![forward, backward] }
    }

    /// Where to send instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.front
    }

    /// Drop everything both ways (`true`) or carry it again (`false`).
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::Relaxed);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
