//! Backlog drain between two node processes on loopback: a town whose store holds a backlog of
//! audit entries (written here, before it starts) comes up under its county, and the county is
//! timed until it holds the whole backlog durably. Next to it, raw sled doing the same durable
//! work the county's store does: one writer, batches of the mesh's batch size, each applied and
//! flushed before the next, values of the size the county stores, keys of the same shape.
//!
//! Rounds alternate raw sled and drain (raw, drain, raw, drain, ..., raw); each drain is
//! compared with the mean of the raw runs either side of it, and the median taken.

use crate::nodes::{write_mesh, NodeProc, SiteDir};
use node::clock::SystemClock;
use node::metrics::Metrics;
use node::records::AuditRecord;
use node::store::{keys, Op, Store, StoreConfig};
use proto::wire::MAX_BATCH_ENTRIES;
use proto::{codec, Entry, Hlc, Kind, NodeId, Role};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Entries in the town's backlog (1M unless `YIWANG_BENCH_BACKLOG` says otherwise).
pub fn backlog() -> u64 {
    std::env::var("YIWANG_BENCH_BACKLOG").ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(1_000_000)
}
/// Appends per commit while pre-filling (the flusher takes up to 16,384 per flush).
const PREFILL_COMMIT: u64 = 10_000;
/// Progress points at which the county's RSS is sampled.
pub const RSS_AT: [f64; 5] = [0.10, 0.25, 0.50, 0.75, 1.0];
/// How often the county's `/metrics` is read.
const POLL: Duration = Duration::from_millis(20);
/// A drain that takes longer than this has failed.
const DRAIN_LIMIT: Duration = Duration::from_secs(600);

const COUNTY: &str = "county-bench";
const TOWN: &str = "town-bench";

/// One drain.
pub struct Drain {
    /// From the town's start to the county holding the whole backlog.
    pub secs: f64,
    /// From the town's start to the first acknowledged batch the bench saw.
    pub startup_secs: f64,
    /// Entries per second from the first sample with entries to the end.
    pub steady_per_s: f64,
    /// County VmRSS at each of [`RSS_AT`], MiB.
    pub rss_mib: Vec<f64>,
    /// County VmHWM at the end, MiB.
    pub peak_rss_mib: f64,
    /// Town VmRSS at each of [`RSS_AT`], MiB.
    pub town_rss_mib: Vec<f64>,
    /// Town VmHWM at the end, MiB.
    pub town_peak_rss_mib: f64,
    /// The county's group commits during the drain: how many, their writes, their time (s).
    pub flushes: f64,
    pub flush_ops: f64,
    pub flush_secs: f64,
    /// What the counter read at the end (the backlog, plus whatever the town appended since).
    pub received: f64,
}

pub struct Figures {
    pub backlog: u64,
    pub raws: Vec<Raw>,
    pub drains: Vec<Drain>,
    /// Per drain: its rate over the mean of the raw runs either side.
    pub ratios: Vec<f64>,
    pub steady_ratios: Vec<f64>,
    pub value_len: usize,
    pub payload_len: usize,
}

/// A realistic audit line, about 100 bytes encoded.
fn audit(i: u64) -> AuditRecord {
    AuditRecord {
        at_ms: 1_764_146_400_000 + i * 37,
        actor: format!("operator:wang.li{:02}", i % 17),
        action: "event.transition".into(),
        subject: format!("event/{TOWN}/{:010}", i),
        why: "closed: field crew confirmed the wall was repaired".into(),
    }
}

fn payload(i: u64) -> Vec<u8> {
    node::records::encode(&audit(i)).unwrap()
}

/// The size of one stored entry as the county stores it (key and value shapes as in the store):
/// the record, and the link the town's store appended to chain it (docs/audit.md).
fn stored_entry(origin: &NodeId, seq: u64) -> Vec<u8> {
    let e = Entry {
        origin: origin.clone(),
        seq,
        hlc: Hlc::new(1_764_146_400_000, 0),
        kind: Kind::Audit,
        payload: node::audit_chain::payload(&audit(seq), &node::audit_chain::GENESIS).unwrap(),
    };
    codec::encode(&e).unwrap()
}

/// Write the backlog into the town's store through the store's own API, then close it.
fn prefill(rt: &tokio::runtime::Runtime, town: &SiteDir, backlog: u64) {
    let t = Instant::now();
    rt.block_on(async {
        let store = Store::open(
            &town.data.join("store"),
            town.id.clone(),
            Arc::new(SystemClock),
            StoreConfig::default(),
            Metrics::unregistered(),
        )
        .expect("town store");
        // A few commits queued at once, so the flusher always has the next one ready.
        let mut pending = VecDeque::new();
        let mut i = 0;
        while i < backlog {
            let n = PREFILL_COMMIT.min(backlog - i);
            let ops = (i..i + n).map(|k| Op::Append { kind: Kind::Audit, payload: payload(k) }).collect();
            i += n;
            pending.push_back(store.submit(ops).await.expect("queued"));
            if pending.len() >= 4 {
                pending.pop_front().unwrap().await.expect("durable");
            }
        }
        for p in pending {
            p.await.expect("durable");
        }
        assert_eq!(store.own_head(Kind::Audit).unwrap(), backlog);
        store.close().await;
    });
    eprintln!("  town store pre-filled with {backlog} audit entries in {:.1} s", t.elapsed().as_secs_f64());
}

/// Let the kernel write back what the previous phase left dirty, so it does not slow the
/// next phase's fsyncs.
fn settle() {
    let _ = std::process::Command::new("sync").status();
    std::thread::sleep(Duration::from_millis(500));
}

/// Set in the environment of the child process that runs raw sled.
const RAW_CHILD_ENV: &str = "YIWANG_BENCH_RAW_SLED_CHILD";

/// One raw sled run.
pub struct Raw {
    pub per_s: f64,
    /// The process's VmRSS at each of [`RSS_AT`], MiB.
    pub rss_mib: Vec<f64>,
    pub peak_rss_mib: f64,
}

/// Raw sled: one writer, `MAX_BATCH_ENTRIES` values per atomic batch, flushed before the next,
/// `n` values in all into a fresh database. It runs in a process of its own (this binary again),
/// started like the county, so its RSS is sled's alone and compares with the county's.
fn raw_sled(dir: &Path, n: u64) -> Raw {
    settle();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env(RAW_CHILD_ENV, format!("{}\n{n}", dir.display()))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("start the raw sled child");
    let _ = std::fs::remove_dir_all(dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "raw sled child failed: {}; {text}", out.status);
    let nums: Vec<f64> = text.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert_eq!(nums.len(), 2 + RSS_AT.len(), "raw sled child said {text:?}");
    Raw { per_s: nums[0], peak_rss_mib: nums[1], rss_mib: nums[2..].to_vec() }
}

/// In the raw sled child: run, print `per_s peak rss...` on one line, and say so.
pub fn raw_child() -> bool {
    let Ok(spec) = std::env::var(RAW_CHILD_ENV) else { return false };
    let (dir, n) = spec.split_once('\n').expect("dir and count");
    let n: u64 = n.parse().expect("count");
    let origin = NodeId::new(TOWN).unwrap();
    let value = stored_entry(&origin, n / 2);
    let pid = std::process::id();
    let rss = |field| crate::nodes::proc_status_kib(pid, field) as f64 / 1024.0;
    let db = sled::Config::new().path(dir).cache_capacity(64 << 20).flush_every_ms(None).open().expect("sled");
    let tree = db.open_tree("entries/audit").unwrap();
    let mut samples = Vec::new();
    let started = Instant::now();
    let mut seq = 1;
    while seq <= n {
        let mut batch = sled::Batch::default();
        for _ in 0..MAX_BATCH_ENTRIES {
            if seq > n {
                break;
            }
            batch.insert(keys::entry_key(&origin, seq), value.clone());
            seq += 1;
        }
        tree.apply_batch(batch).unwrap();
        db.flush().unwrap();
        while samples.len() < RSS_AT.len() && (seq - 1) as f64 >= RSS_AT[samples.len()] * n as f64 {
            samples.push(rss("VmRSS"));
        }
    }
    let per_s = n as f64 / started.elapsed().as_secs_f64();
    let samples: Vec<String> = samples.iter().map(|r| format!("{r:.1}")).collect();
    println!("{per_s:.1} {:.1} {}", rss("VmHWM"), samples.join(" "));
    true
}

/// Start the county, then the town, and time until the county holds the backlog.
fn drain_once(county: &SiteDir, town: &SiteDir, backlog: u64) -> Drain {
    let _ = std::fs::remove_dir_all(&county.data);
    std::fs::create_dir_all(&county.data).unwrap();
    settle();
    let mut county_p = NodeProc::start(county);
    let sample = format!("yiwang_mesh_entries_received_total{{peer=\"{}\"}}", town.id);
    let started = Instant::now();
    let mut town_p = NodeProc::start(town);
    let mut first: Option<(Instant, f64)> = None;
    let mut rss = Vec::new();
    let mut town_rss = Vec::new();
    let mut last_print = Instant::now();
    let received = loop {
        std::thread::sleep(POLL);
        county_p.check_alive();
        town_p.check_alive();
        let got = county_p.metric(&sample).unwrap_or(0.0);
        if got > 0.0 && first.is_none() {
            first = Some((Instant::now(), got));
        }
        while rss.len() < RSS_AT.len() && got >= RSS_AT[rss.len()] * backlog as f64 {
            rss.push(county_p.status_mib("VmRSS"));
            town_rss.push(town_p.status_mib("VmRSS"));
        }
        if got >= backlog as f64 {
            break got;
        }
        if last_print.elapsed() > Duration::from_secs(5) {
            last_print = Instant::now();
            eprintln!("    {:.0} s: {got:.0} received", started.elapsed().as_secs_f64());
        }
        assert!(
            started.elapsed() < DRAIN_LIMIT,
            "the county holds {got} of {backlog} after {DRAIN_LIMIT:?}; county log:\n{}\ntown log:\n{}",
            county_p.log_tail(),
            town_p.log_tail()
        );
    };
    let done = Instant::now();
    let county_metric = |name: &str| county_p.metric(name).unwrap_or(f64::NAN);
    let flushes = county_metric("yiwang_store_flush_seconds_count");
    let flush_secs = county_metric("yiwang_store_flush_seconds_sum");
    let flush_ops = county_metric("yiwang_store_flush_batch_ops_sum");
    let peak_rss_mib = county_p.status_mib("VmHWM");
    let town_peak_rss_mib = town_p.status_mib("VmHWM");
    drop(town_p);
    drop(county_p);
    let (first_at, first_got) = first.expect("entries arrived");
    Drain {
        secs: (done - started).as_secs_f64(),
        startup_secs: (first_at - started).as_secs_f64(),
        steady_per_s: (received - first_got) / (done - first_at).as_secs_f64(),
        rss_mib: rss,
        peak_rss_mib,
        town_rss_mib: town_rss,
        town_peak_rss_mib,
        flushes,
        flush_ops,
        flush_secs,
        received,
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(rounds: usize) -> Figures {
    let tmp = tempfile::tempdir().unwrap();
    let sites = write_mesh(
        tmp.path(),
        &[
            // The city is in the topology (there must be one) but never runs.
            ("city-bench", Role::City, &[]),
            (COUNTY, Role::County, &["city-bench"]),
            (TOWN, Role::Town, &[COUNTY]),
        ],
    );
    let (county, town) = (&sites[1], &sites[2]);
    let origin = town.id.clone();
    let backlog = backlog();
    let value = stored_entry(&origin, backlog / 2);
    let payload_len = payload(backlog / 2).len();
    eprintln!(
        "drain: {backlog} audit entries ({payload_len}-byte records, {}-byte stored entries with their links), batches of \
         {MAX_BATCH_ENTRIES}, {rounds} rounds",
        value.len()
    );
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    prefill(&rt, town, backlog);
    drop(rt);

    let raw = |i: usize| {
        let r = raw_sled(&tmp.path().join(format!("raw{i}")), backlog);
        let rss: Vec<String> = r.rss_mib.iter().map(|r| format!("{r:.0}")).collect();
        eprintln!(
            "  raw sled {i}: {:.0} inserts/s; RSS at 10/25/50/75/100%: {} MiB, peak {:.0} MiB",
            r.per_s,
            rss.join("/"),
            r.peak_rss_mib
        );
        r
    };
    let mut raws = vec![raw(0)];
    let mut drains = Vec::new();
    for round in 0..rounds {
        let d = drain_once(county, town, backlog);
        let rss: Vec<String> = d.rss_mib.iter().map(|r| format!("{r:.0}")).collect();
        let town_rss: Vec<String> = d.town_rss_mib.iter().map(|r| format!("{r:.0}")).collect();
        eprintln!(
            "  drain {round}: {:.1} s ({:.0} entries/s; {:.2} s to the first batch, then {:.0}/s); county RSS at \
             10/25/50/75/100%: {} MiB, peak {:.0} MiB; town RSS {} MiB, peak {:.0} MiB",
            d.secs,
            backlog as f64 / d.secs,
            d.startup_secs,
            d.steady_per_s,
            rss.join("/"),
            d.peak_rss_mib,
            town_rss.join("/"),
            d.town_peak_rss_mib
        );
        eprintln!(
            "    county flusher: {:.0} group commits of {:.0} writes on average, {:.2} ms each, busy {:.1} s ({:.0}% of \
             the drain); raw sled takes {:.2} ms per batch",
            d.flushes,
            d.flush_ops / d.flushes,
            d.flush_secs / d.flushes * 1e3,
            d.flush_secs,
            d.flush_secs / d.secs * 100.0,
            MAX_BATCH_ENTRIES as f64 / raws[round].per_s * 1e3
        );
        drains.push(d);
        raws.push(raw(round + 1));
    }
    let around = |i: usize| (raws[i].per_s + raws[i + 1].per_s) / 2.0;
    let ratios = drains.iter().enumerate().map(|(i, d)| backlog as f64 / d.secs / around(i)).collect();
    let steady_ratios = drains.iter().enumerate().map(|(i, d)| d.steady_per_s / around(i)).collect();
    Figures { backlog, raws, drains, ratios, steady_ratios, value_len: value.len(), payload_len }
}
