//! Scenario files: what a run builds, what it does to the city, and what it must hold to.
//!
//! A scenario is TOML (the shipped ones are in `simulations/scenarios/`, compiled into the
//! binary so `yiwang-sim run NAME` works from anywhere):
//!
//! ```toml
//! name = "town-island"
//! summary = "A town cut from both parents for 20 minutes keeps working; all it did reaches the city."
//! duration = "30m"            # virtual time the workload runs; faults fall inside it
//!
//! [topology]
//! nodes = 20                  # a generated city in the reference proportions (176: the reference city)
//! counties = 4                # or say how many of each role (counties, towns, harbours)
//! voters = true               # the city and counties run yiwang-control voters of the sanctions lists
//!
//! [workload]
//! op_interval = "15s"         # mean time between two operations of one node
//! harbour_op_interval = "10s" # a class's own (also town_op_interval)
//! list_write_interval = "2m"  # mean time between two sanctions writes at a random voter
//!
//! [[fault]]
//! kind = "isolate"            # see [`FaultKind`]
//! nodes = ["town-1"]
//! at = "5m"
//! for = "20m"
//!
//! [invariants]
//! converge_within = "5m"      # after the last fault ends
//! availability = 1.0          # share of towns' and harbours' operations acknowledged
//! ```
//!
//! Nodes are named by selectors: a site's id (`town-3`), `role:town`, `subtree:county-1` (the
//! county and the sites whose preferred parent it is), `voters`, `leader` (the raft leader when
//! the fault begins), `parents:SITE` (the site's parents), `random:ROLE` (one site of that
//! role, drawn from the seed) or `all`.
//! Every fault has `at`, an optional `for` (default: until the end of the workload) and an
//! optional `every` (repeat from `at` with this period while the workload runs). A fault of
//! kind `random` with a `count` draws that many faults of random kinds on random sites from
//! the run's seed, beginning within its window.

use crate::topology::CityShape;
use serde::Deserialize;
use std::time::Duration;

/// The scenarios shipped with the simulator, by file name.
pub const SHIPPED: &[(&str, &str)] = &[
    ("town-island", include_str!("../scenarios/town-island.toml")),
    ("county-cut", include_str!("../scenarios/county-cut.toml")),
    ("city-alone", include_str!("../scenarios/city-alone.toml")),
    ("raft-ring", include_str!("../scenarios/raft-ring.toml")),
    ("raft-bridge", include_str!("../scenarios/raft-bridge.toml")),
    ("leader-minority", include_str!("../scenarios/leader-minority.toml")),
    ("harbour-one-way", include_str!("../scenarios/harbour-one-way.toml")),
    ("idle-flap", include_str!("../scenarios/idle-flap.toml")),
    ("long-partition", include_str!("../scenarios/long-partition.toml")),
    ("crash-storm", include_str!("../scenarios/crash-storm.toml")),
    ("skewed-town", include_str!("../scenarios/skewed-town.toml")),
    ("late-harbour", include_str!("../scenarios/late-harbour.toml")),
    ("lossy-harbours", include_str!("../scenarios/lossy-harbours.toml")),
    ("mass-heal", include_str!("../scenarios/mass-heal.toml")),
    ("county-disk-full", include_str!("../scenarios/county-disk-full.toml")),
    ("slow-county-link", include_str!("../scenarios/slow-county-link.toml")),
];

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{0}: no such file, and no shipped scenario of that name (`yiwang-sim list` shows them)")]
    NotFound(String),
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: String, source: toml::de::Error },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// One scenario, as its file says.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// One line on what it shows.
    pub summary: String,
    /// Virtual time the workload runs; the heal comes after it.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    pub topology: TopologySpec,
    #[serde(default)]
    pub workload: WorkloadSpec,
    #[serde(default, rename = "fault")]
    pub faults: Vec<FaultSpec>,
    #[serde(default)]
    pub invariants: Invariants,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopologySpec {
    /// Sites of a generated city in the reference proportions (176: the reference city).
    #[serde(default)]
    pub nodes: Option<usize>,
    /// Counts of each role, overriding what `nodes` gives (without `nodes`, from none).
    #[serde(default)]
    pub counties: Option<usize>,
    #[serde(default)]
    pub towns: Option<usize>,
    #[serde(default)]
    pub harbours: Option<usize>,
    /// Raft timing and log retention of the voters, where it differs from yiwang-control's.
    #[serde(default)]
    pub raft: RaftSpec,
    /// The city and county sites run voters of the sanctions lists, and their nodes publish
    /// what the voters commit.
    #[serde(default)]
    pub voters: bool,
    /// Sites that are not started with the rest: a `join` fault starts them.
    #[serde(default)]
    pub late: Vec<String>,
}

impl TopologySpec {
    /// How many sites of each role the city has.
    pub fn shape(&self) -> CityShape {
        let base = CityShape::of(self.nodes.unwrap_or(1));
        CityShape {
            counties: self.counties.unwrap_or(base.counties),
            towns: self.towns.unwrap_or(base.towns),
            harbours: self.harbours.unwrap_or(base.harbours),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RaftSpec {
    /// Log entries between snapshots.
    pub snapshot_every: Option<u64>,
    /// Log entries kept behind a snapshot.
    pub logs_kept: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadSpec {
    /// Mean time between two operations of one node (each class's own below, if given).
    #[serde(with = "humantime_serde")]
    pub op_interval: Duration,
    /// Towns' mean time between two operations: grid events, escalations, checkpoint hits,
    /// watchlist edits.
    #[serde(with = "humantime_serde")]
    pub town_op_interval: Option<Duration>,
    /// Harbours' mean time between two operations: AIS batches of the fleet's positions, grid
    /// events, escalations, watchlist edits.
    #[serde(with = "humantime_serde")]
    pub harbour_op_interval: Option<Duration>,
    /// Mean time between two sanctions writes (`0s`: none; needs voters).
    #[serde(with = "humantime_serde")]
    pub list_write_interval: Duration,
}

impl WorkloadSpec {
    /// Mean time between two operations of a node of `role`.
    pub fn interval(&self, role: proto::Role) -> Duration {
        match role {
            proto::Role::Town => self.town_op_interval,
            proto::Role::Harbour => self.harbour_op_interval,
            _ => None,
        }
        .unwrap_or(self.op_interval)
    }
}

impl Default for WorkloadSpec {
    /// SEED.md's peak (see [`SEED_PEAK_OP_INTERVAL`]); scenarios meant to stress say their
    /// own rates.
    fn default() -> Self {
        WorkloadSpec {
            op_interval: SEED_PEAK_OP_INTERVAL,
            town_op_interval: None,
            harbour_op_interval: None,
            list_write_interval: SEED_PEAK_LIST_WRITE_INTERVAL,
        }
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Invariants {
    /// Longest the mesh may take to converge once the last fault is over.
    #[serde(with = "humantime_serde")]
    pub converge_within: Duration,
    /// Least share of the operations tried at each town and harbour (while it runs) that it
    /// acknowledged.
    pub availability: f64,
}

impl Default for Invariants {
    fn default() -> Self {
        Invariants { converge_within: Duration::from_secs(300), availability: 1.0 }
    }
}

/// One fault of the schedule. (Unknown keys are refused by [`FaultKind`], which takes every
/// key but these three: serde cannot deny them on a struct with a flattened field.)
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct FaultSpec {
    #[serde(flatten)]
    pub kind: FaultKind,
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// How long it lasts (default: until the workload ends).
    #[serde(default, rename = "for", with = "humantime_serde")]
    pub lasts: Option<Duration>,
    /// Repeat from `at` with this period while the workload runs.
    #[serde(default, with = "humantime_serde")]
    pub every: Option<Duration>,
}

/// What a fault does, to the sites its selectors name.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultKind {
    /// Cut every link between `nodes` and every other site, both ways.
    Isolate { nodes: Vec<String> },
    /// Cut the links from every site of `from` to every site of `to`; both ways unless
    /// `one_way`.
    Cut {
        from: Vec<String>,
        to: Vec<String>,
        #[serde(default)]
        one_way: bool,
    },
    /// Degrade the links between `nodes` and their parents, both ways.
    Degrade {
        nodes: Vec<String>,
        #[serde(default)]
        loss: f64,
        #[serde(default)]
        duplicate: f64,
        #[serde(default, with = "humantime_serde")]
        delay: Option<Duration>,
        #[serde(default, with = "humantime_serde")]
        jitter: Option<Duration>,
        /// Bytes per second each way (a radio link's rate).
        #[serde(default)]
        bandwidth: Option<u64>,
    },
    /// The site's processes stop (SIGSTOP, a frozen VM) and go on when the fault ends: nothing
    /// reaches them or leaves them and they take no operations. (Their timers still run in the
    /// simulation, where a stopped process's would all fire at once on resuming.)
    Pause { nodes: Vec<String> },
    /// A power cut: the site's unflushed writes are lost (a flush under way may be torn), and
    /// it restarts on its disk when the fault ends.
    Crash { nodes: Vec<String> },
    /// `count` power cuts at seeded moments within the fault's window, each on a seeded site
    /// of `nodes` and aimed at a flush under way, each down 2 to 30 s.
    CrashStorm { nodes: Vec<String>, count: usize },
    /// The site's clock reads `offset` off (e.g. `"+10m"`, `"-90s"`) while the fault lasts;
    /// a jump when it begins and when it ends.
    Clock { nodes: Vec<String>, offset: String },
    /// The site's disk fills: writes past what it holds when the fault begins fail.
    DiskFull { nodes: Vec<String> },
    /// Every flush of the site's disk fails.
    FailingFlushes { nodes: Vec<String> },
    /// Sites listed under `topology.late` start when the fault begins (the fault has no end).
    Join { nodes: Vec<String> },
    /// `count` faults of random kinds on random sites, each beginning between `at` and the end
    /// of this fault's window, drawn from the run's seed (swarm testing inside a scenario).
    Random { count: usize },
}

impl FaultKind {
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Isolate { .. } => "isolate",
            FaultKind::Cut { .. } => "cut",
            FaultKind::Degrade { .. } => "degrade",
            FaultKind::Pause { .. } => "pause",
            FaultKind::Crash { .. } => "crash",
            FaultKind::CrashStorm { .. } => "crash_storm",
            FaultKind::Clock { .. } => "clock",
            FaultKind::DiskFull { .. } => "disk_full",
            FaultKind::FailingFlushes { .. } => "failing_flushes",
            FaultKind::Join { .. } => "join",
            FaultKind::Random { .. } => "random",
        }
    }

    /// Every selector the fault names.
    pub fn selectors(&self) -> Vec<&String> {
        match self {
            FaultKind::Cut { from, to, .. } => from.iter().chain(to).collect(),
            FaultKind::Isolate { nodes }
            | FaultKind::Degrade { nodes, .. }
            | FaultKind::Pause { nodes }
            | FaultKind::Crash { nodes }
            | FaultKind::CrashStorm { nodes, .. }
            | FaultKind::Clock { nodes, .. }
            | FaultKind::DiskFull { nodes }
            | FaultKind::FailingFlushes { nodes }
            | FaultKind::Join { nodes } => nodes.iter().collect(),
            FaultKind::Random { .. } => vec![],
        }
    }
}

/// A signed offset such as `+10m`, `-90s` or `2h`, in milliseconds.
pub fn parse_offset(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    let d = humantime::parse_duration(rest.trim()).map_err(|e| format!("offset {s:?}: {e}"))?;
    i64::try_from(d.as_millis()).map(|ms| sign * ms).map_err(|_| format!("offset {s:?} is too large"))
}

/// Longest virtual time a scenario may run its workload (a simulated week).
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

impl Scenario {
    /// A shipped scenario by name, or a file by path.
    pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        if let Some((_, text)) = SHIPPED.iter().find(|(n, _)| *n == name_or_path) {
            return Scenario::parse(name_or_path, text);
        }
        let path = std::path::Path::new(name_or_path);
        if !path.exists() {
            return Err(ScenarioError::NotFound(name_or_path.into()));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScenarioError::Read { path: name_or_path.into(), source })?;
        Scenario::parse(name_or_path, &text)
    }

    /// Parse and check a scenario's text; `path` names it in errors.
    pub fn parse(path: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario =
            toml::from_str(text).map_err(|source| ScenarioError::Parse { path: path.into(), source })?;
        scenario.validate().map_err(|message| ScenarioError::Invalid { path: path.into(), message })?;
        Ok(scenario)
    }

    fn validate(&self) -> Result<(), String> {
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(format!(
                "duration must be more than zero and at most {}",
                humantime::format_duration(MAX_DURATION)
            ));
        }
        let nodes = self.topology.shape().nodes();
        if nodes > crate::topology::MAX_NODES || self.topology.nodes == Some(0) {
            return Err(format!("the city must have 1 to {} sites, not {nodes}", crate::topology::MAX_NODES));
        }
        if self.topology.voters && self.topology.shape().counties == 0 && self.topology.raft.snapshot_every.is_some() {
            return Err("topology.raft needs voters at counties".into());
        }
        let intervals =
            [Some(self.workload.op_interval), self.workload.town_op_interval, self.workload.harbour_op_interval];
        if intervals.iter().flatten().any(|d| d.is_zero()) {
            return Err("workload: every op_interval must be more than zero".into());
        }
        if !self.workload.list_write_interval.is_zero() && !self.topology.voters {
            return Err("workload.list_write_interval needs topology.voters = true (set it to \"0s\" for none)".into());
        }
        if !(0.0..=1.0).contains(&self.invariants.availability) {
            return Err("invariants.availability is a share, 0 to 1".into());
        }
        for (i, f) in self.faults.iter().enumerate() {
            let what = format!("fault {} ({})", i + 1, f.kind.name());
            if f.at > self.duration {
                return Err(format!("{what}: at is past the scenario's duration"));
            }
            if let Some(every) = f.every {
                if every.is_zero() || f.lasts.is_none_or(|l| l >= every) {
                    return Err(format!("{what}: every needs a `for` shorter than it"));
                }
            }
            match &f.kind {
                FaultKind::Degrade { loss, duplicate, .. }
                    if !(0.0..=1.0).contains(loss) || !(0.0..=1.0).contains(duplicate) =>
                {
                    return Err(format!("{what}: loss and duplicate are probabilities, 0 to 1"));
                }
                FaultKind::Clock { offset, .. } => {
                    parse_offset(offset).map_err(|e| format!("{what}: {e}"))?;
                }
                FaultKind::CrashStorm { count, .. } if *count == 0 => {
                    return Err(format!("{what}: count must be at least 1"));
                }
                FaultKind::Join { nodes } => {
                    if let Some(n) = nodes.iter().find(|n| !self.topology.late.contains(n)) {
                        return Err(format!("{what}: {n} must be listed in topology.late"));
                    }
                    if f.lasts.is_some() || f.every.is_some() {
                        return Err(format!("{what}: a join has no `for` or `every`"));
                    }
                }
                _ => {}
            }
            if let FaultKind::Random { count } = f.kind {
                if count == 0 || f.every.is_some() {
                    return Err(format!("{what}: count must be at least 1, and a random fault has no `every`"));
                }
                continue;
            }
            if f.kind.selectors().is_empty() {
                return Err(format!("{what}: names no sites"));
            }
        }
        Ok(())
    }

    /// Every (start, end) window of fault `f`, in virtual time from the run's start; the end
    /// is `None` for a fault that lasts to the end of the workload.
    pub fn windows(&self, f: &FaultSpec) -> Vec<(Duration, Duration)> {
        let end = |at: Duration| f.lasts.map_or(self.duration, |l| (at + l).min(self.duration));
        match f.every {
            None => vec![(f.at, end(f.at))],
            Some(every) => {
                let mut at = f.at;
                let mut out = Vec::new();
                while at < self.duration {
                    out.push((at, end(at)));
                    at += every;
                }
                out
            }
        }
    }
}

/// Mean time between two operations of one node under the benchmark's workload: SEED.md's
/// peak (ten times the average) for 170 towns and harbours. At 2 minutes the city makes 0.5
/// grid events a second (SEED: 0.04 on average, peaks ten times that) and about as many
/// watchlist hits, besides escalations, answers and watchlist edits.
pub const SEED_PEAK_OP_INTERVAL: Duration = Duration::from_secs(120);
/// Mean time between two sanctions writes under the benchmark's workload (SEED: 24,500 entries
/// in three years, about one an hour; here six times that).
pub const SEED_PEAK_LIST_WRITE_INTERVAL: Duration = Duration::from_secs(600);

/// What `yiwang-sim bench` runs: a city of `nodes` sites (voters at the city and counties when
/// `voters`) under SEED.md's peak workload, no faults, for `duration`.
pub fn bench(nodes: usize, voters: bool, duration: Duration) -> Scenario {
    Scenario {
        name: format!("bench-{nodes}"),
        summary: "a city under SEED.md's peak workload, no faults".into(),
        duration,
        topology: TopologySpec { nodes: Some(nodes), voters, ..TopologySpec::default() },
        workload: WorkloadSpec {
            op_interval: SEED_PEAK_OP_INTERVAL,
            list_write_interval: if voters { SEED_PEAK_LIST_WRITE_INTERVAL } else { Duration::ZERO },
            ..WorkloadSpec::default()
        },
        faults: vec![],
        invariants: Invariants::default(),
    }
}

/// A random scenario for `yiwang-sim explore` (swarm testing): a city with voters and a
/// schedule of 2 to 6 faults of random kinds on random sites at random times, every one of
/// them drawn from `seed`.
pub fn random(seed: u64) -> Scenario {
    let mut rng = node::rng::Seed(seed).rng("explore");
    let shape = CityShape { counties: 4, towns: 8, harbours: 8 };
    let sites = site_names(shape);
    let count = 2 + rng.below(5) as usize;
    let faults = random_faults(&mut rng, &sites, (Duration::from_secs(30), Duration::from_secs(14 * 60)), count);
    Scenario {
        name: format!("explore-{seed}"),
        summary: "random faults on random sites (yiwang-sim explore)".into(),
        duration: Duration::from_secs(20 * 60),
        topology: TopologySpec {
            counties: Some(shape.counties),
            towns: Some(shape.towns),
            harbours: Some(shape.harbours),
            voters: true,
            ..TopologySpec::default()
        },
        workload: WorkloadSpec {
            op_interval: Duration::from_secs(15),
            list_write_interval: Duration::from_secs(120),
            ..WorkloadSpec::default()
        },
        faults,
        invariants: Invariants::default(),
    }
}

/// The ids of a generated city of `shape`, the city first.
fn site_names(shape: CityShape) -> Vec<String> {
    crate::topology::city(shape).into_iter().map(|s| s.id.to_string()).collect()
}

/// `count` faults of random kinds on random `sites` (the city first), each beginning within
/// `window` and lasting 5 s to 5 minutes: isolations of one to three sites, cuts between a
/// site and its parents (both ways or one), degraded uplinks, crashes, pauses, storms and
/// clock offsets.
fn random_faults(
    rng: &mut node::rng::Rng,
    sites: &[String],
    window: (Duration, Duration),
    count: usize,
) -> Vec<FaultSpec> {
    let pick = |rng: &mut node::rng::Rng, n: usize| -> Vec<String> {
        let mut out: Vec<String> = (0..n).map(|_| sites[rng.below(sites.len() as u64) as usize].clone()).collect();
        out.sort();
        out.dedup();
        out
    };
    // With a city alone there is nothing below it: the city stands in (its faults then act on nothing).
    let below_city = |rng: &mut node::rng::Rng| {
        sites[1.min(sites.len() - 1) + rng.below((sites.len() as u64 - 1).max(1)) as usize].clone()
    };
    let secs = |rng: &mut node::rng::Rng, lo: u64, hi: u64| Duration::from_secs(lo + rng.below(hi - lo + 1));
    let (from, to) = (window.0.as_secs(), window.1.as_secs().max(window.0.as_secs()));
    let mut faults = Vec::new();
    for _ in 0..count {
        let at = secs(rng, from, to);
        let lasts = Some(secs(rng, 5, 5 * 60));
        let kind = match rng.below(8) {
            0 | 1 => {
                let n = 1 + rng.below(3) as usize;
                FaultKind::Isolate { nodes: pick(rng, n) }
            }
            2 => {
                // A site and its parents: the links that carry its traffic.
                let site = below_city(rng);
                FaultKind::Cut {
                    from: vec![site.clone()],
                    to: vec![format!("parents:{site}")],
                    one_way: rng.chance(0.5),
                }
            }
            3 => FaultKind::Degrade {
                nodes: vec![below_city(rng)],
                loss: rng.below(40) as f64 / 100.0,
                duplicate: rng.below(5) as f64 / 100.0,
                delay: Some(Duration::from_millis(rng.below(300))),
                jitter: Some(Duration::from_millis(rng.below(300))),
                bandwidth: rng.chance(0.3).then(|| 4_000 + rng.below(60_000)),
            },
            4 => FaultKind::Crash { nodes: pick(rng, 1) },
            6 => FaultKind::Pause { nodes: pick(rng, 1) },
            5 => FaultKind::CrashStorm { nodes: vec!["all".into()], count: 2 + rng.below(6) as usize },
            _ => FaultKind::Clock {
                nodes: pick(rng, 1),
                offset: format!("{}{}s", if rng.chance(0.5) { "-" } else { "+" }, 30 + rng.below(900)),
            },
        };
        faults.push(FaultSpec { kind, at, lasts, every: None });
    }
    faults
}

impl Scenario {
    /// The scenario with each `random` fault replaced by the faults it draws from `seed` (see
    /// [`random_faults`]), within its window, on this scenario's sites.
    pub fn with_random_faults(&self, seed: u64) -> Scenario {
        let mut rng = node::rng::Seed(seed).rng("scenario random faults");
        let sites = site_names(self.topology.shape());
        let mut out = self.clone();
        out.faults = Vec::new();
        for f in &self.faults {
            match &f.kind {
                FaultKind::Random { count } => {
                    let end = f.lasts.map_or(self.duration, |l| (f.at + l).min(self.duration));
                    out.faults.extend(random_faults(&mut rng, &sites, (f.at, end), *count));
                }
                _ => out.faults.push(f.clone()),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scenario of `duration` on a generated city of `nodes` without list writes, with
    /// `faults` (TOML).
    fn small(duration: &str, nodes: usize, faults: &str) -> Scenario {
        let text = format!(
            "name = \"x\"\nsummary = \"y\"\nduration = \"{duration}\"\n[topology]\nnodes = {nodes}\n[workload]\nlist_write_interval = \"0s\"\n{faults}"
        );
        Scenario::parse("x", &text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_shipped_scenario_parses_and_is_named_for_its_file() {
        for (name, text) in SHIPPED {
            let s = Scenario::parse(name, text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&s.name, name);
            assert!(!s.summary.is_empty());
        }
    }

    #[test]
    fn random_scenarios_are_valid_and_follow_their_seed() {
        for seed in 0..50 {
            let s = random(seed);
            s.validate().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert_eq!(toml::to_string(&s).unwrap(), toml::to_string(&random(seed)).unwrap());
        }
        assert_ne!(toml::to_string(&random(1)).unwrap(), toml::to_string(&random(2)).unwrap());
    }

    #[test]
    fn a_random_fault_draws_its_faults_from_the_seed_within_its_window() {
        let s = small("30m", 20, "[[fault]]\nkind = \"random\"\ncount = 6\nat = \"5m\"\nfor = \"10m\"\n");
        let a = s.with_random_faults(1);
        assert_eq!(a.faults.len(), 6);
        assert!(a.faults.iter().all(|f| f.at >= Duration::from_secs(300) && f.at <= Duration::from_secs(900)));
        assert!(a.faults.iter().all(|f| !matches!(f.kind, FaultKind::Random { .. })));
        a.validate().unwrap();
        assert_eq!(toml::to_string(&a).unwrap(), toml::to_string(&s.with_random_faults(1)).unwrap());
        assert_ne!(toml::to_string(&a).unwrap(), toml::to_string(&s.with_random_faults(2)).unwrap());
    }

    #[test]
    fn offsets_are_signed() {
        assert_eq!(parse_offset("+10m"), Ok(600_000));
        assert_eq!(parse_offset("-90s"), Ok(-90_000));
        assert_eq!(parse_offset("2h"), Ok(7_200_000));
        assert!(parse_offset("soon").is_err());
    }

    #[test]
    fn bad_scenarios_say_what_is_wrong() {
        let base = "name = \"x\"\nsummary = \"y\"\nduration = \"10m\"\n[topology]\nnodes = 5\n";
        let cases = [
            ("[workload]\nlist_write_interval = \"1m\"\n", "needs topology.voters"),
            ("[[fault]]\nkind = \"crash\"\nnodes = [\"town-1\"]\nat = \"20m\"\n", "past the scenario's duration"),
            ("[[fault]]\nkind = \"clock\"\nnodes = [\"town-1\"]\noffset = \"soon\"\nat = \"1m\"\n", "offset"),
            ("[[fault]]\nkind = \"join\"\nnodes = [\"town-1\"]\nat = \"1m\"\n", "topology.late"),
            ("[[fault]]\nkind = \"crash\"\nnodes = [\"town-1\"]\nat = \"1m\"\nevery = \"1m\"\n", "every needs"),
            ("[[fault]]\nkind = \"teleport\"\nnodes = [\"town-1\"]\nat = \"1m\"\n", "teleport"),
        ];
        for (extra, want) in cases {
            let text = format!(
                "{base}{}{extra}",
                if extra.starts_with("[workload]") { "" } else { "[workload]\nlist_write_interval = \"0s\"\n" }
            );
            let err = Scenario::parse("case.toml", &text).expect_err(extra).to_string();
            assert!(err.contains(want), "{extra}: {err}");
        }
    }

    #[test]
    fn repeating_faults_open_a_window_per_period() {
        let s = small(
            "10m",
            5,
            "[[fault]]\nkind = \"isolate\"\nnodes = [\"town-1\"]\nat = \"1m\"\nfor = \"30s\"\nevery = \"4m\"\n",
        );
        let m = |s: u64| Duration::from_secs(s);
        assert_eq!(s.windows(&s.faults[0]), vec![(m(60), m(90)), (m(300), m(330)), (m(540), m(570))]);
    }
}
