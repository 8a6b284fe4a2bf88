//! An in-memory datagram network for quinn.
//!
//! Hosts are IP addresses (`10.0.0.x`); each binds sockets at `ip:port` with [`Fabric::bind`].
//! A [`FabricSocket`] implements [`quinn::AsyncUdpSocket`], so a quinn endpoint (and so a node's
//! mesh) runs over the fabric unchanged; [`Fabric::runtime`] is tokio's quinn runtime, whose
//! timers and `now()` follow tokio's clock, paused or not.
//!
//! Sending is O(1) and synchronous, whatever the number of hosts: one lookup of the directed
//! link (source host → destination host), the link's faults applied with the fabric's seeded
//! RNG, then the datagram is pushed onto the receiving socket's bounded queue (dropped when full,
//! like a real NIC) and the socket's reader is woken. Nothing runs per pair of hosts: a link is
//! a map entry, made when it is first used or given faults. Delayed datagrams wait in one delay
//! line (a heap served by one task for the whole fabric).
//!
//! Faults, per directed link ([`LinkFaults`]): cut (both ways with [`Fabric::cut`], one way with
//! [`Fabric::cut_one_way`]), loss probability, duplication probability, fixed delay plus
//! uniform jitter (jitter reorders), and a bandwidth cap (datagrams leave one after another at
//! the link's rate, behind a queue of at most [`LINK_QUEUE`]; more is dropped). They apply when a datagram is sent: one already in the
//! delay line when its link is cut still arrives, as it would on a wire. [`LinkCounters`] count
//! what happened to every datagram on every link, so a test can prove a fault really happened.
//!
//! Faults are repeatable: the RNG is seeded by [`FabricConfig::seed`] and drawn from in send
//! order, which a single-threaded runtime makes repeatable (given the same traffic).
//!
//! [`FabricSocket::close`] takes a host off the network at once, as a power cut does: nothing
//! it sends leaves, nothing sent to it arrives, and its address is free for a restarted node.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use node::rng::Rng;
use quinn::udp::{EcnCodepoint, RecvMeta, Transmit};

/// Fabric-wide settings.
#[derive(Debug, Clone, Copy)]
pub struct FabricConfig {
    /// Seeds every random fault decision.
    pub seed: u64,
    /// Datagrams a socket's receive queue holds; more are dropped (counted as `overflow`).
    pub queue_capacity: usize,
    /// Largest datagram payload carried; larger ones are dropped (counted as `too_big`), as on a
    /// path with a 1500-byte MTU and the don't-fragment bit set.
    pub max_datagram: usize,
}

impl Default for FabricConfig {
    fn default() -> Self {
        FabricConfig { seed: 1, queue_capacity: 1024, max_datagram: 1472 }
    }
}

/// Faults of one directed link. The default is a perfect link.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkFaults {
    /// Drop everything.
    pub cut: bool,
    /// Probability (0 to 1) that a datagram is lost.
    pub loss: f64,
    /// Probability (0 to 1) that a datagram is delivered twice.
    pub duplicate: f64,
    /// Fixed one-way delay, in tokio time (virtual on a paused runtime). Delayed datagrams are
    /// delivered by a task the first one starts, so they must be sent inside a tokio runtime
    /// (quinn always sends from one).
    pub delay: Duration,
    /// Extra delay drawn uniformly from 0 up to this, per datagram (so datagrams reorder).
    pub jitter: Duration,
    /// Bytes per second the link carries (`None`: no limit).
    pub bandwidth: Option<u64>,
}

/// Longest a bandwidth-capped link queues datagrams waiting for their turn (a router's buffer);
/// a datagram that would wait longer is dropped, counted as `overflow`.
pub const LINK_QUEUE: Duration = Duration::from_millis(500);

impl LinkFaults {
    fn is_perfect(&self) -> bool {
        *self == LinkFaults::default()
    }
}

/// What happened to the datagrams sent over one directed link (or, summed, the whole fabric).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Datagrams handed to the fabric.
    pub sent: u64,
    /// Datagrams put on the receiving socket's queue (duplicates included).
    pub delivered: u64,
    /// Extra copies made by the duplication fault.
    pub duplicated: u64,
    /// Dropped because the link was cut.
    pub cut: u64,
    /// Dropped by the loss fault.
    pub lost: u64,
    /// Dropped because a queue was full: the receiving socket's, or a bandwidth-capped link's.
    pub overflow: u64,
    /// Dropped because nothing is bound at the destination.
    pub unreachable: u64,
    /// Dropped because larger than [`FabricConfig::max_datagram`].
    pub too_big: u64,
}

impl LinkCounters {
    /// Every datagram dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.cut + self.lost + self.overflow + self.unreachable + self.too_big
    }

    /// What changed since `earlier` (a snapshot of the same link).
    pub fn since(&self, earlier: &LinkCounters) -> LinkCounters {
        LinkCounters {
            sent: self.sent - earlier.sent,
            delivered: self.delivered - earlier.delivered,
            duplicated: self.duplicated - earlier.duplicated,
            cut: self.cut - earlier.cut,
            lost: self.lost - earlier.lost,
            overflow: self.overflow - earlier.overflow,
            unreachable: self.unreachable - earlier.unreachable,
            too_big: self.too_big - earlier.too_big,
        }
    }
}

impl std::ops::AddAssign for LinkCounters {
    fn add_assign(&mut self, o: LinkCounters) {
        self.sent += o.sent;
        self.delivered += o.delivered;
        self.duplicated += o.duplicated;
        self.cut += o.cut;
        self.lost += o.lost;
        self.overflow += o.overflow;
        self.unreachable += o.unreachable;
        self.too_big += o.too_big;
    }
}

impl std::ops::Add for LinkCounters {
    type Output = LinkCounters;
    fn add(mut self, o: LinkCounters) -> LinkCounters {
        self += o;
        self
    }
}

/// One directed link's faults and counters, as [`Fabric::links`] reports them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkReport {
    pub from: IpAddr,
    pub to: IpAddr,
    pub faults: LinkFaults,
    pub counters: LinkCounters,
}

/// Called for every datagram put on a socket's queue: when (tokio time), from, to, length.
pub type DeliveryObserver = Box<dyn FnMut(tokio::time::Instant, SocketAddr, SocketAddr, usize) + Send>;

struct Datagram {
    from: SocketAddr,
    data: Box<[u8]>,
    ecn: Option<EcnCodepoint>,
}

#[derive(Default)]
struct Link {
    faults: LinkFaults,
    counters: LinkCounters,
    /// Under a bandwidth cap: when the link has sent everything queued on it.
    busy_until: Option<tokio::time::Instant>,
}

/// A datagram waiting in the delay line.
struct Delayed {
    due: tokio::time::Instant,
    /// Send order, so equal due times deliver first-in first-out.
    order: u64,
    to: SocketAddr,
    datagram: Datagram,
}

impl PartialEq for Delayed {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.order) == (o.due, o.order)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Delayed {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(o.due, o.order))
    }
}

struct State {
    rng: Rng,
    /// Sees every datagram put on a socket's queue (the simulator's trace).
    observer: Option<DeliveryObserver>,
    sockets: HashMap<SocketAddr, Arc<Inbox>>,
    links: HashMap<(IpAddr, IpAddr), Link>,
    delayed: BinaryHeap<Reverse<Delayed>>,
    delay_order: u64,
    /// Whether the delay line's task runs.
    delay_task: bool,
}

struct Shared {
    config: FabricConfig,
    state: Mutex<State>,
    /// Wakes the delay line when an earlier datagram joins it, or the fabric ends.
    delay_wake: Arc<tokio::sync::Notify>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.delay_wake.notify_one();
    }
}

/// The network. Cheap to clone; every clone is the same network.
#[derive(Clone)]
pub struct Fabric {
    shared: Arc<Shared>,
}

impl fmt::Debug for Fabric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("Fabric").field("sockets", &st.sockets.len()).field("links", &st.links.len()).finish()
    }
}

/// A socket's receive queue, shared between the fabric (which fills it) and the socket.
struct Inbox {
    addr: SocketAddr,
    capacity: usize,
    queue: Mutex<InboxQueue>,
    /// Taken off the network ([`FabricSocket::close`]): sends are dropped.
    closed: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct InboxQueue {
    datagrams: VecDeque<Datagram>,
    waker: Option<Waker>,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, InboxQueue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a datagram, or return it when the queue is full.
    fn push(&self, d: Datagram) -> Result<(), Datagram> {
        let mut q = self.lock();
        if q.datagrams.len() >= self.capacity {
            return Err(d);
        }
        q.datagrams.push_back(d);
        if let Some(w) = q.waker.take() {
            w.wake();
        }
        Ok(())
    }
}

impl Fabric {
    pub fn new(config: FabricConfig) -> Fabric {
        Fabric {
            shared: Arc::new(Shared {
                config,
                state: Mutex::new(State {
                    rng: Rng::new(config.seed),
                    observer: None,
                    sockets: HashMap::new(),
                    links: HashMap::new(),
                    delayed: BinaryHeap::new(),
                    delay_order: 0,
                    delay_task: false,
                }),
                delay_wake: Arc::new(tokio::sync::Notify::new()),
            }),
        }
    }

    /// A fabric with default settings and this seed.
    pub fn with_seed(seed: u64) -> Fabric {
        Fabric::new(FabricConfig { seed, ..FabricConfig::default() })
    }

    pub fn config(&self) -> &FabricConfig {
        &self.shared.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bind a socket at `addr`. Port 0 picks a free port on that host. The address is free
    /// again once the socket (and every endpoint using it) is dropped, so a restarted node can
    /// bind it again.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<Arc<FabricSocket>> {
        let mut st = self.lock();
        let addr = if addr.port() == 0 {
            let port = (49152..=u16::MAX)
                .find(|p| !st.sockets.contains_key(&SocketAddr::new(addr.ip(), *p)))
                .ok_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, format!("no free port on {}", addr.ip())))?;
            SocketAddr::new(addr.ip(), port)
        } else {
            addr
        };
        if st.sockets.contains_key(&addr) {
            return Err(io::Error::new(io::ErrorKind::AddrInUse, format!("{addr} is already bound on the fabric")));
        }
        let inbox = Arc::new(Inbox {
            addr,
            capacity: self.shared.config.queue_capacity,
            queue: Mutex::default(),
            closed: Default::default(),
        });
        st.sockets.insert(addr, inbox.clone());
        Ok(Arc::new(FabricSocket { fabric: Arc::downgrade(&self.shared), inbox }))
    }

    /// The quinn runtime to pair with fabric sockets: tokio's, whose timers and clock follow a
    /// paused runtime's virtual time.
    pub fn runtime(&self) -> Arc<dyn quinn::Runtime> {
        Arc::new(quinn::TokioRuntime)
    }

    /// The faults of the link from `from` to `to` (perfect unless set).
    pub fn faults(&self, from: IpAddr, to: IpAddr) -> LinkFaults {
        self.lock().links.get(&(from, to)).map(|l| l.faults).unwrap_or_default()
    }

    /// Set the faults of the link from `from` to `to` (one direction).
    pub fn set_faults(&self, from: IpAddr, to: IpAddr, faults: LinkFaults) {
        assert!((0.0..=1.0).contains(&faults.loss), "loss {} is not a probability", faults.loss);
        assert!((0.0..=1.0).contains(&faults.duplicate), "duplicate {} is not a probability", faults.duplicate);
        self.lock().links.entry((from, to)).or_default().faults = faults;
    }

    /// Change the faults of the link from `from` to `to` in place.
    pub fn update_faults(&self, from: IpAddr, to: IpAddr, f: impl FnOnce(&mut LinkFaults)) {
        let mut faults = self.faults(from, to);
        f(&mut faults);
        self.set_faults(from, to, faults);
    }

    /// Cut the link between `a` and `b` both ways.
    pub fn cut(&self, a: IpAddr, b: IpAddr) {
        self.cut_one_way(a, b);
        self.cut_one_way(b, a);
    }

    /// Cut the link from `from` to `to` only: datagrams still flow from `to` to `from`.
    pub fn cut_one_way(&self, from: IpAddr, to: IpAddr) {
        self.update_faults(from, to, |f| f.cut = true);
    }

    /// Undo [`Fabric::cut`] both ways (other faults stay).
    pub fn heal(&self, a: IpAddr, b: IpAddr) {
        self.heal_one_way(a, b);
        self.heal_one_way(b, a);
    }

    pub fn heal_one_way(&self, from: IpAddr, to: IpAddr) {
        self.update_faults(from, to, |f| f.cut = false);
    }

    /// Every link back to perfect; counters stay.
    pub fn heal_all(&self) {
        for link in self.lock().links.values_mut() {
            link.faults = LinkFaults::default();
        }
    }

    /// The counters of the link from `from` to `to`.
    pub fn counters(&self, from: IpAddr, to: IpAddr) -> LinkCounters {
        self.lock().links.get(&(from, to)).map(|l| l.counters).unwrap_or_default()
    }

    /// The counters summed over every link.
    pub fn totals(&self) -> LinkCounters {
        let mut total = LinkCounters::default();
        for l in self.lock().links.values() {
            total += l.counters;
        }
        total
    }

    /// Every link used or given faults, sorted by (from, to).
    pub fn links(&self) -> Vec<LinkReport> {
        let mut out: Vec<LinkReport> = self
            .lock()
            .links
            .iter()
            .map(|(&(from, to), l)| LinkReport { from, to, faults: l.faults, counters: l.counters })
            .collect();
        out.sort_by_key(|r| (r.from, r.to));
        out
    }

    /// Watch every datagram delivered from now on.
    pub fn set_observer(&self, observer: DeliveryObserver) {
        self.lock().observer = Some(observer);
    }

    /// Datagrams waiting in the delay line.
    pub fn in_flight(&self) -> usize {
        self.lock().delayed.len()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Send one datagram: apply the link's faults, then deliver now or through the delay line.
    fn send(self: &Arc<Self>, from: SocketAddr, to: SocketAddr, data: &[u8], ecn: Option<EcnCodepoint>) {
        let mut st = self.lock();
        let st = &mut *st;
        let link = st.links.entry((from.ip(), to.ip())).or_default();
        link.counters.sent += 1;
        let faults = link.faults;
        if faults.cut {
            link.counters.cut += 1;
            return;
        }
        if data.len() > self.config.max_datagram {
            link.counters.too_big += 1;
            return;
        }
        let perfect = faults.is_perfect();
        if !perfect && st.rng.chance(faults.loss) {
            link.counters.lost += 1;
            return;
        }
        let copies = if !perfect && st.rng.chance(faults.duplicate) {
            link.counters.duplicated += 1;
            2
        } else {
            1
        };
        let Some(inbox) = st.sockets.get(&to).cloned() else {
            link.counters.unreachable += copies;
            return;
        };
        // Under a cap, a datagram waits for those queued before it, then takes its own time.
        let mut queued = Duration::ZERO;
        if let Some(rate) = faults.bandwidth.filter(|r| *r > 0) {
            let now = tokio::time::Instant::now();
            let start = link.busy_until.filter(|b| *b > now).unwrap_or(now);
            if start - now > LINK_QUEUE {
                link.counters.overflow += copies;
                return;
            }
            let takes = Duration::from_secs_f64(data.len() as f64 * copies as f64 / rate as f64);
            link.busy_until = Some(start + takes);
            queued = start + takes - now;
        }
        for _ in 0..copies {
            let datagram = Datagram { from, data: data.into(), ecn };
            let mut delay = faults.delay + queued;
            if !faults.jitter.is_zero() {
                delay += faults.jitter.mul_f64(st.rng.next_f64());
            }
            if delay.is_zero() {
                let len = datagram.data.len();
                match inbox.push(datagram) {
                    Ok(()) => {
                        link.counters.delivered += 1;
                        if let Some(observe) = st.observer.as_mut() {
                            observe(tokio::time::Instant::now(), from, to, len);
                        }
                    }
                    Err(_) => link.counters.overflow += 1,
                }
            } else {
                let due = tokio::time::Instant::now() + delay;
                st.delay_order += 1;
                let earliest = st.delayed.peek().is_none_or(|Reverse(d)| due < d.due);
                st.delayed.push(Reverse(Delayed { due, order: st.delay_order, to, datagram }));
                if !st.delay_task {
                    st.delay_task = true;
                    tokio::spawn(delay_line(Arc::downgrade(self), self.delay_wake.clone()));
                } else if earliest {
                    self.delay_wake.notify_one();
                }
            }
        }
    }

    /// Deliver what the delay line holds that is due; returns when the next one is.
    fn deliver_due(&self) -> Option<tokio::time::Instant> {
        let now = tokio::time::Instant::now();
        let mut st = self.lock();
        let st = &mut *st;
        while let Some(Reverse(d)) = st.delayed.peek() {
            if d.due > now {
                return Some(d.due);
            }
            let Reverse(d) = st.delayed.pop().expect("peeked");
            let link = st.links.entry((d.datagram.from.ip(), d.to.ip())).or_default();
            let (from, len) = (d.datagram.from, d.datagram.data.len());
            match st.sockets.get(&d.to) {
                None => link.counters.unreachable += 1,
                Some(inbox) => match inbox.push(d.datagram) {
                    Ok(()) => {
                        link.counters.delivered += 1;
                        if let Some(observe) = st.observer.as_mut() {
                            observe(now, from, d.to, len);
                        }
                    }
                    Err(_) => link.counters.overflow += 1,
                },
            }
        }
        None
    }
}

/// The one task serving delayed datagrams, for the whole fabric; it ends with the fabric.
async fn delay_line(shared: Weak<Shared>, wake: Arc<tokio::sync::Notify>) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        let next = s.deliver_due();
        drop(s);
        // A send (or the fabric's end) between here and the wait leaves a permit: not missed.
        match next {
            Some(due) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

/// A socket on the fabric. Implements [`quinn::AsyncUdpSocket`]; hand it to
/// `quinn::Endpoint::new_with_abstract_socket` (or a node's `MeshParts`) with
/// [`Fabric::runtime`].
pub struct FabricSocket {
    fabric: Weak<Shared>,
    inbox: Arc<Inbox>,
}

impl fmt::Debug for FabricSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FabricSocket").field("addr", &self.inbox.addr).finish()
    }
}

impl Drop for FabricSocket {
    fn drop(&mut self) {
        self.unbind();
    }
}

impl FabricSocket {
    fn unbind(&self) {
        if let Some(s) = self.fabric.upgrade() {
            let mut st = s.lock();
            if st.sockets.get(&self.inbox.addr).is_some_and(|i| Arc::ptr_eq(i, &self.inbox)) {
                st.sockets.remove(&self.inbox.addr);
            }
        }
    }

    /// Take this socket off the network now, whoever still holds it: what it sends is dropped
    /// (counted as `cut`), what is sent to it is unreachable, what it had queued is gone, and
    /// its address is free to bind again. A power cut, as the network sees it.
    pub fn close(&self) {
        self.inbox.closed.store(true, std::sync::atomic::Ordering::Relaxed);
        self.inbox.lock().datagrams.clear();
        self.unbind();
    }

    pub fn addr(&self) -> SocketAddr {
        self.inbox.addr
    }

    /// Datagrams waiting to be read.
    pub fn queued(&self) -> usize {
        self.inbox.lock().datagrams.len()
    }
}

/// Sends never block (a full receiver drops, as UDP does), so the socket is always writable.
#[derive(Debug)]
struct AlwaysWritable;

impl quinn::UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl quinn::AsyncUdpSocket for FabricSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn quinn::UdpPoller>> {
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let Some(shared) = self.fabric.upgrade() else {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "the fabric is gone"));
        };
        if self.inbox.closed.load(std::sync::atomic::Ordering::Relaxed) {
            shared.lock().links.entry((self.inbox.addr.ip(), transmit.destination.ip())).or_default().counters.cut += 1;
            return Ok(());
        }
        // One transmit may carry several datagrams of `segment_size` (GSO); we advertise one
        // segment, but split anyway rather than deliver a glued-together datagram.
        let size = transmit.segment_size.unwrap_or(transmit.contents.len()).max(1);
        for chunk in transmit.contents.chunks(size) {
            shared.send(self.inbox.addr, transmit.destination, chunk, transmit.ecn);
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut q = self.inbox.lock();
        let mut n = 0;
        while n < bufs.len().min(meta.len()) {
            let Some(d) = q.datagrams.pop_front() else { break };
            // A datagram longer than the buffer is truncated, as recvmsg does.
            let len = d.data.len().min(bufs[n].len());
            bufs[n][..len].copy_from_slice(&d.data[..len]);
            meta[n] = RecvMeta { addr: d.from, len, stride: len, ecn: d.ecn, dst_ip: Some(self.inbox.addr.ip()) };
            n += 1;
        }
        if n > 0 {
            return Poll::Ready(Ok(n));
        }
        if self.fabric.strong_count() == 0 {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::NotConnected, "the fabric is gone")));
        }
        q.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inbox.addr)
    }

    fn may_fragment(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quinn::AsyncUdpSocket;
    use std::future::poll_fn;

    fn addr(host: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, host], port))
    }

    fn send(s: &FabricSocket, to: SocketAddr, data: &[u8]) {
        s.try_send(&Transmit { destination: to, ecn: None, contents: data, segment_size: None, src_ip: None }).unwrap();
    }

    /// Everything queued at `s` now, with senders.
    fn drain(s: &FabricSocket) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        loop {
            let mut storage = [[0u8; 64]; 4];
            let mut bufs: Vec<IoSliceMut> = storage.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            let mut meta = [RecvMeta::default(); 4];
            match s.poll_recv(&mut cx, &mut bufs, &mut meta) {
                Poll::Ready(Ok(n)) => {
                    for i in 0..n {
                        out.push((meta[i].addr, bufs[i][..meta[i].len].to_vec()));
                    }
                }
                Poll::Ready(Err(e)) => panic!("{e}"),
                Poll::Pending => return out,
            }
        }
    }

    #[test]
    fn delivers_and_counts_per_directed_link() {
        let f = Fabric::with_seed(7);
        let a = f.bind(addr(1, 7900)).unwrap();
        let b = f.bind(addr(2, 7900)).unwrap();
        send(&a, b.addr(), b"hello");
        send(&b, a.addr(), b"back");
        assert_eq!(drain(&b), vec![(a.addr(), b"hello".to_vec())]);
        assert_eq!(drain(&a), vec![(b.addr(), b"back".to_vec())]);
        let ab = f.counters(a.addr().ip(), b.addr().ip());
        assert_eq!((ab.sent, ab.delivered, ab.dropped()), (1, 1, 0));
        assert_eq!(f.totals().delivered, 2);
        send(&a, addr(3, 1), b"nobody");
        assert_eq!(f.counters(a.addr().ip(), addr(3, 1).ip()).unreachable, 1);
        assert_eq!(f.bind(addr(1, 7900)).unwrap_err().kind(), io::ErrorKind::AddrInUse);
        let any = f.bind(addr(1, 0)).unwrap();
        assert_ne!(any.addr().port(), 0);
        drop(a);
        f.bind(addr(1, 7900)).expect("free again once dropped");
    }

    #[test]
    fn cuts_one_way_or_both_and_heals() {
        let f = Fabric::with_seed(7);
        let a = f.bind(addr(1, 1)).unwrap();
        let b = f.bind(addr(2, 1)).unwrap();
        let (ia, ib) = (a.addr().ip(), b.addr().ip());
        f.cut_one_way(ia, ib);
        send(&a, b.addr(), b"x");
        send(&b, a.addr(), b"y");
        assert!(drain(&b).is_empty());
        assert_eq!(drain(&a).len(), 1);
        f.cut(ia, ib);
        send(&b, a.addr(), b"y");
        assert!(drain(&a).is_empty());
        assert_eq!(f.counters(ia, ib).cut, 1);
        assert_eq!(f.counters(ib, ia).cut, 1);
        f.heal(ia, ib);
        send(&a, b.addr(), b"x");
        send(&b, a.addr(), b"y");
        assert_eq!((drain(&a).len(), drain(&b).len()), (1, 1));
    }

    #[test]
    fn a_closed_socket_is_off_the_network_and_its_address_free() {
        let f = Fabric::with_seed(7);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        f.set_observer(Box::new(move |_, from, to, len| log.lock().unwrap().push((from, to, len))));
        let a = f.bind(addr(1, 1)).unwrap();
        let b = f.bind(addr(2, 1)).unwrap();
        let a_addr = a.addr();
        send(&b, a.addr(), b"queued");
        a.close();
        send(&a, b.addr(), b"from the dead");
        send(&b, a.addr(), b"to the dead");
        assert!(drain(&b).is_empty());
        assert!(drain(&a).is_empty(), "what was queued went with the power");
        assert_eq!(f.counters(a.addr().ip(), b.addr().ip()).cut, 1);
        assert_eq!(f.counters(b.addr().ip(), a.addr().ip()).unreachable, 1);
        let again = f.bind(addr(1, 1)).expect("the address is free while the old socket is still held");
        send(&b, again.addr(), b"hello");
        assert_eq!(drain(&again).len(), 1);
        drop(a);
        send(&b, again.addr(), b"still there");
        assert_eq!(drain(&again).len(), 1, "dropping the closed socket does not unbind its successor");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[0], (b.addr(), a_addr, 6));
    }

    #[test]
    fn full_queues_drop_and_oversized_datagrams_are_dropped() {
        let f = Fabric::new(FabricConfig { seed: 1, queue_capacity: 3, max_datagram: 10 });
        let a = f.bind(addr(1, 1)).unwrap();
        let b = f.bind(addr(2, 1)).unwrap();
        for _ in 0..5 {
            send(&a, b.addr(), b"x");
        }
        send(&a, b.addr(), &[0u8; 11]);
        assert_eq!(drain(&b).len(), 3);
        let c = f.counters(a.addr().ip(), b.addr().ip());
        assert_eq!((c.sent, c.delivered, c.overflow, c.too_big), (6, 3, 2, 1));
    }

    #[test]
    fn loss_and_duplication_are_repeatable_from_the_seed() {
        let run = |seed| {
            let f = Fabric::with_seed(seed);
            let a = f.bind(addr(1, 1)).unwrap();
            let b = f.bind(addr(2, 1)).unwrap();
            f.set_faults(
                a.addr().ip(),
                b.addr().ip(),
                LinkFaults { loss: 0.3, duplicate: 0.2, ..LinkFaults::default() },
            );
            let mut got = Vec::new();
            for i in 0..500u32 {
                send(&a, b.addr(), &i.to_be_bytes());
                got.extend(drain(&b).into_iter().map(|(_, d)| d));
            }
            (got, f.counters(a.addr().ip(), b.addr().ip()))
        };
        let (got, c) = run(42);
        assert_eq!(run(42), (got.clone(), c), "same seed, same faults");
        assert_ne!(run(43).0, got, "another seed, other faults");
        assert!((100..200).contains(&c.lost), "{c:?}");
        assert!((50..150).contains(&c.duplicated), "{c:?}");
        assert_eq!(c.delivered, c.sent - c.lost + c.duplicated);
        assert_eq!(got.len() as u64, c.delivered);
    }

    #[tokio::test(start_paused = true)]
    async fn delay_delivers_after_virtual_time_in_order_and_jitter_reorders() {
        let f = Fabric::with_seed(3);
        let a = f.bind(addr(1, 1)).unwrap();
        let b = f.bind(addr(2, 1)).unwrap();
        let (ia, ib) = (a.addr().ip(), b.addr().ip());
        f.set_faults(ia, ib, LinkFaults { delay: Duration::from_millis(40), ..LinkFaults::default() });
        let start = tokio::time::Instant::now();
        for i in 0..20u8 {
            send(&a, b.addr(), &[i]);
        }
        assert!(drain(&b).is_empty());
        assert_eq!(f.in_flight(), 20);
        let mut got = Vec::new();
        while got.len() < 20 {
            let mut storage = [0u8; 8];
            let mut bufs = [IoSliceMut::new(&mut storage)];
            let mut meta = [RecvMeta::default()];
            let n = poll_fn(|cx| b.poll_recv(cx, &mut bufs, &mut meta)).await.unwrap();
            assert_eq!(n, 1);
            got.push(bufs[0][0]);
        }
        assert_eq!(start.elapsed(), Duration::from_millis(40));
        assert_eq!(got, (0..20).collect::<Vec<u8>>(), "a fixed delay keeps order");

        f.set_faults(
            ia,
            ib,
            LinkFaults { delay: Duration::from_millis(5), jitter: Duration::from_millis(50), ..LinkFaults::default() },
        );
        for i in 0..20u8 {
            send(&a, b.addr(), &[i]);
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
        let got: Vec<u8> = drain(&b).into_iter().map(|(_, d)| d[0]).collect();
        assert_eq!(got.len(), 20);
        assert_ne!(got, (0..20).collect::<Vec<u8>>(), "jitter reorders");
        assert_eq!(f.counters(ia, ib).delivered, 40);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_bandwidth_cap_spaces_datagrams_and_drops_past_its_queue() {
        let f = Fabric::with_seed(5);
        let a = f.bind(addr(1, 1)).unwrap();
        let b = f.bind(addr(2, 1)).unwrap();
        let (ia, ib) = (a.addr().ip(), b.addr().ip());
        // 10 kB/s: a 1,000-byte datagram takes 100 ms; the queue holds 500 ms of them.
        f.set_faults(ia, ib, LinkFaults { bandwidth: Some(10_000), ..LinkFaults::default() });
        let start = tokio::time::Instant::now();
        for _ in 0..20 {
            send(&a, b.addr(), &[7u8; 1000]);
        }
        let c = f.counters(ia, ib);
        assert_eq!(c.overflow, 14, "six fit in the queue (starting at 0, 100, ... 500 ms), the rest are dropped");
        let mut arrivals = Vec::new();
        while arrivals.len() < 6 {
            let mut storage = [0u8; 1500];
            let mut bufs = [IoSliceMut::new(&mut storage)];
            let mut meta = [RecvMeta::default()];
            poll_fn(|cx| b.poll_recv(cx, &mut bufs, &mut meta)).await.unwrap();
            arrivals.push(start.elapsed().as_millis());
        }
        assert_eq!(arrivals, vec![100, 200, 300, 400, 500, 600]);
        // The other direction is not capped.
        send(&b, a.addr(), &[1u8; 1000]);
        assert_eq!(drain(&a).len(), 1);
    }
}
