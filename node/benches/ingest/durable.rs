//! Durable detections per second through the whole ingest path (JSON decode, watchlist check
//! against 1M entries, store, acknowledged after group commit), next to raw sled durable batch
//! inserts of values of the same size in batches of the same size.

use node::clock::SystemClock;
use node::feeds::checkpoint;
use node::feeds::viid::objects::Place;
use node::feeds::viid::places::{PlaceKind, Places};
use node::feeds::viid::ViidFeed;
use node::ingest::{Ingest, WatchlistHandle};
use node::metrics::Metrics;
use node::rng::Seed;
use node::rules::watchlist::{EntryFields, Subject, Watchlist};
use node::store::{Store, StoreConfig};
use node::vessels::VesselDesk;
use proto::{codec, Entry, Hlc, Kind, NodeId};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Detections per batch, as a checkpoint gateway would post them.
const BATCH: usize = 100;
/// Each measurement runs this long.
const WINDOW: Duration = Duration::from_millis(1500);
/// Alternating rounds of baseline and subject.
const ROUNDS: usize = 5;
/// Distinct batches each producer cycles through.
const POOL: usize = 32;
/// Concurrent producers in the concurrent run.
const PRODUCERS: usize = 8;

pub struct Figures {
    pub raw_sled_per_s: f64,
    /// GA/T 1400 motor-vehicle objects over `alpr_group` records, both with `PRODUCERS`
    /// producers.
    pub viid_ratio: f64,
    pub viid_per_s: f64,
    /// One producer awaiting each batch's acknowledgement, over raw sled.
    pub ingest_ratio: f64,
    /// `PRODUCERS` producers sharing group commits, over raw sled.
    pub concurrent_ratio: f64,
}

fn record(i: u64) -> String {
    format!(
        r#"{{"data_type":"alpr_group","best_plate_number":"鲁K{:05}","best_confidence":91.5,"checkpoint_id":"cp-0412","lane":2,"direction":"inbound","vehicle":{{"make":[{{"name":"byd","confidence":88.1}}]}},"epoch_start":{}}}"#,
        i % 100_000,
        1_764_146_400_000u64 + i
    )
}

/// The same detection as a GA/T 1400 `MotorVehicleObject`, with the fields devices send.
fn vehicle(i: u64) -> String {
    format!(
        r#"{{"MotorVehicleID":"37020200001190000001022026113018{i:016}","InfoKind":1,"SourceID":"3702020000119000000102202611301800","TollgateID":"37020200001210000001","DeviceID":"37020200001190000001","StorageUrl1":"http://10.0.0.5/{i}.jpg","LaneNo":2,"HasPlate":"1","PlateClass":"02","PlateColor":"2","PlateNo":"鲁K{:05}","PlateReliability":"91","Direction":"1","VehicleClass":"K33","VehicleColor":"A","VehicleBrand":"12","Speed":"52","PassTime":"20261130180000"}}"#,
        i % 100_000
    )
}

fn watchlist(n: usize) -> Watchlist {
    let mut w = Watchlist::new();
    let fields = EntryFields {
        list: "stolen",
        reason: "reported stolen",
        added_by: "bench",
        authority: "City Public Security Bureau",
        legal_basis: "Road Traffic Safety Law art. 96",
        expires_ms: None,
    };
    for i in 0..n {
        // Plates that never match the bench's traffic, so every check is a full miss.
        w.insert(&Subject::Plate(format!("浙B{i:07}")), fields).expect("valid entry");
    }
    w
}

fn open_ingest(dir: &std::path::Path, list: WatchlistHandle) -> Ingest {
    let node = NodeId::new("town-bench").unwrap();
    let store =
        Store::open(dir, node, Arc::new(SystemClock), StoreConfig::default(), Metrics::unregistered()).expect("store");
    Ingest::new(store, Arc::new(SystemClock), Metrics::unregistered(), list, VesselDesk::new(None))
}

/// A producer's batches, made before the clock starts: what is measured is the node's work,
/// not the bench formatting what a device would send. `make(i)` makes the batch whose first
/// record is number `i`.
fn pool<T>(producer: usize, make: impl Fn(u64) -> T) -> Vec<T> {
    (0..POOL as u64).map(|b| make(producer as u64 * 1_000_000_000 + b * BATCH as u64)).collect()
}

/// A GA/T 1400 listener's state over `ingest`, with a registered tollgate.
async fn open_viid(ingest: Ingest) -> ViidFeed {
    let config: node::config::ViidFeed = toml::from_str(
        r#"name = "bench"
http = "127.0.0.1:0"
devices = [{ id = "37020200001190000001", password = "x" }]"#,
    )
    .expect("config");
    let places = Places::load(ingest.store().clone()).expect("places");
    let feed = ViidFeed::new(ingest, &config, places, "town-bench", Seed(1));
    let place =
        Place { id: "37020200001210000001".into(), name: None, lat: Some(36.07), lon: Some(120.38), place_code: None };
    feed.places().upsert(PlaceKind::Tollgate, vec![place]).await.expect("tollgate");
    feed
}

/// Like [`ingest_rate`], posting GA/T 1400 bodies of `BATCH` motor-vehicle objects through
/// the listener's whole path after authentication (decode, people checks, position, durable
/// commit, the per-object answer).
async fn viid_rate(feed: &ViidFeed, producers: usize) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let feed = feed.clone();
        tasks.push(tokio::spawn(async move {
            let bodies: Vec<String> = pool(p, |i| {
                let objects: Vec<String> = (i..i + BATCH as u64).map(vehicle).collect();
                format!(r#"{{"MotorVehicleListObject":{{"MotorVehicleObject":[{}]}}}}"#, objects.join(","))
            });
            let mut done = 0u64;
            for body in bodies.iter().cycle() {
                if started.elapsed() >= WINDOW {
                    break;
                }
                let answer =
                    feed.post_vehicles("/VIID/MotorVehicles", "37020200001190000001", body.as_bytes(), true).await;
                assert_eq!(answer.status(), 200, "VIID post refused");
                done += BATCH as u64;
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// Producers each send one batch at a time and wait for its acknowledgement.
async fn ingest_rate(ingest: &Ingest, producers: usize) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let ingest = ingest.clone();
        tasks.push(tokio::spawn(async move {
            let batches: Vec<Vec<String>> = pool(p, |i| (i..i + BATCH as u64).map(record).collect());
            let mut done = 0u64;
            for lines in batches.iter().cycle() {
                if started.elapsed() >= WINDOW {
                    break;
                }
                let reads = lines.iter().map(|l| checkpoint::decode_one(l).expect("valid record")).collect();
                let receipt = ingest.plates("bench", reads).await.expect("durable");
                done += receipt.accepted as u64;
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// Raw sled: one writer, `BATCH` values per atomic batch, flushed before the next.
fn raw_sled_rate(dir: &std::path::Path, value_len: usize) -> f64 {
    let db = sled::Config::new().path(dir).cache_capacity(64 << 20).flush_every_ms(None).open().expect("sled");
    let tree = db.open_tree("raw").unwrap();
    let value = vec![0x5au8; value_len];
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < WINDOW {
        let mut batch = sled::Batch::default();
        for _ in 0..BATCH {
            let mut key = b"\x0atown-bench".to_vec();
            key.extend_from_slice(&n.to_be_bytes());
            batch.insert(key, value.clone());
            n += 1;
        }
        tree.apply_batch(batch).unwrap();
        db.flush().unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// The size of one stored detection entry, so the baseline writes values of the same size.
fn entry_len() -> usize {
    let read = checkpoint::decode_one(&record(42)).unwrap();
    let payload = node::records::encode(&node::records::Detection::Plate(read)).unwrap();
    let e = Entry {
        origin: NodeId::new("town-bench").unwrap(),
        seq: 1_000_000,
        hlc: Hlc::new(1_764_146_400_000, 0),
        kind: Kind::Detection,
        payload,
    };
    codec::encode(&e).unwrap().len()
}

/// Median of a few numbers.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run() -> Figures {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    eprintln!("building a 1M-entry watchlist ...");
    let t = Instant::now();
    let list = WatchlistHandle::new(watchlist(1_000_000));
    eprintln!("  built in {:.1} s", t.elapsed().as_secs_f64());
    let value_len = entry_len();
    eprintln!("stored detection entry: {value_len} bytes; batches of {BATCH}; {} s per run", WINDOW.as_secs_f64());

    // Rounds alternate baseline and subject, each on a fresh database so both write into trees
    // of the same size, and the ratio is taken per round (neighbours in time share the
    // machine's mood) and then the median across rounds.
    let tmp = tempfile::tempdir().unwrap();
    let (mut raws, mut singles, mut concs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut viids, mut viid_rates) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let raw = raw_sled_rate(&tmp.path().join(format!("raw{round}")), value_len);
        let single = rt.block_on(async {
            let ingest = open_ingest(&tmp.path().join(format!("single{round}")), list.clone());
            let rate = ingest_rate(&ingest, 1).await;
            ingest.store().clone().close().await;
            rate
        });
        let conc = rt.block_on(async {
            let ingest = open_ingest(&tmp.path().join(format!("conc{round}")), list.clone());
            ingest_rate(&ingest, PRODUCERS).await
        });
        let viid = rt.block_on(async {
            let ingest = open_ingest(&tmp.path().join(format!("viid{round}")), list.clone());
            viid_rate(&open_viid(ingest).await, PRODUCERS).await
        });
        eprintln!(
            "round {round}: raw sled {raw:.0}/s, ingest 1 producer {single:.0}/s, ingest {PRODUCERS} producers {conc:.0}/s, VIID {PRODUCERS} producers {viid:.0}/s"
        );
        viids.push(viid / conc);
        viid_rates.push(viid);
        raws.push(raw);
        singles.push(single / raw);
        concs.push(conc / raw);
    }
    let raw = median(raws);
    Figures {
        raw_sled_per_s: raw,
        viid_ratio: median(viids),
        viid_per_s: median(viid_rates),
        ingest_ratio: median(singles),
        concurrent_ratio: median(concs),
    }
}
