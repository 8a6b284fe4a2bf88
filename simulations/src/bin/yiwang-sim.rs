//! `yiwang-sim`: the partition simulator's command line. A thin wrapper over the
//! `simulations` library.

use clap::{Parser, Subcommand, ValueEnum};
use node::store::InjectedBugs;
use simulations::run::{run, run_trace, RunOptions, RunReport, TraceOptions};
use simulations::scenario::{self, Scenario, SHIPPED};
use simulations::topology::MAX_NODES;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "yiwang-sim",
    version,
    about = "Whole yiwang meshes in one process on virtual time: real nodes and raft voters, real QUIC with mutual TLS over an in-memory network, simulated disks that lose power. A run replays exactly from its scenario and seed."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// A mechanism to break on purpose, to show the checkers catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Bug {
    /// Replication sends entries as soon as the store applies them, before they are durable:
    /// a power cut then takes away entries a parent already holds, and the node numbers new,
    /// different ones the same (seq_conflicts > 0).
    ReplicateBeforeDurable,
    /// The store writes each tree of a commit as its own batch, so a power cut can keep an
    /// entry and lose its audit record.
    CommitPerTree,
    /// A node leaves out one in 40 of the entries it accepts from a peer and acknowledges them
    /// all the same (nothing_lost and converged fail).
    DropAckedEntry,
    /// Nodes take each sanctions stream as it arrives and enforce whichever moved last, so a
    /// lagging stream sets the version back (list_versions_monotonic and raft_safety fail).
    ListOutOfOrder,
    /// The simulator does not apply one-way cuts, though its fault log says they began
    /// (faults_happened fails).
    IgnoreOnewayCut,
}

/// The run's options with `list` broken on purpose.
fn options(seed: u64, list: &[Bug], progress: Option<Duration>) -> RunOptions {
    RunOptions {
        seed,
        bugs: InjectedBugs {
            replicate_before_durable: list.contains(&Bug::ReplicateBeforeDurable),
            commit_per_tree: list.contains(&Bug::CommitPerTree),
            drop_acked_entry: list.contains(&Bug::DropAckedEntry),
            list_out_of_order: list.contains(&Bug::ListOutOfOrder),
        },
        ignore_one_way_cuts: list.contains(&Bug::IgnoreOnewayCut),
        progress,
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario (a shipped one by name, see `list`, or a TOML file) with a seed, print
    /// every check and the fault log, and end with
    /// `verdict: PASS|FAIL scenario=NAME seed=N virtual=Xs wall=Ys trace=HEX`.
    ///
    /// Exits 0 on PASS, 1 on FAIL, 2 on bad arguments or a run that could not be built.
    Run {
        /// A shipped scenario's name or a scenario file.
        scenario: String,
        /// The run's seed: everything random in the run derives from it.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Break a mechanism on purpose (see the values).
        #[arg(long, value_enum, value_name = "BUG")]
        inject_bug: Vec<Bug>,
        /// Write report.json (every check, the fault log, timelines, the scenario and seed)
        /// into this directory, made if missing.
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
        /// No progress lines on standard error.
        #[arg(long)]
        quiet: bool,
    },
    /// Run again what a report.json ran (same scenario, seed and injected bugs) and say
    /// whether the trace is the same.
    Replay {
        /// A report.json written by `run --report`.
        report: PathBuf,
        #[arg(long)]
        quiet: bool,
    },
    /// The shipped scenarios, one line each.
    List,
    /// Random fault schedules (random cuts, losses, crashes and clock jumps on random sites),
    /// one per seed, or a given scenario over many seeds; prints every failing seed with the
    /// command that replays it. Exits 1 if any failed.
    Explore {
        /// How many seeds to run.
        #[arg(long, default_value_t = 10)]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Run this scenario over the seeds instead of random schedules.
        #[arg(long)]
        scenario: Option<String>,
        #[arg(long, value_enum, value_name = "BUG")]
        inject_bug: Vec<Bug>,
        /// Write the report of every failing seed into DIR/seed-N/ (replay it with
        /// `yiwang-sim replay DIR/seed-N/report.json`).
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
    },
    /// Virtual seconds per wall second: the 176-node reference city with its voters, then the
    /// 1,760-node province (one city tree ten times the size, without voters: fifty counties
    /// would make a fifty-voter raft group no one would run), each under SEED.md's peak
    /// workload with real quinn. Prints `ratio virtual_vs_wall=X` and
    /// `ratio province_virtual_vs_wall=Y`.
    Bench {
        /// Virtual time the reference city runs.
        #[arg(long = "virtual", value_name = "DURATION", default_value = "30m", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Virtual time the province runs.
        #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
        province: Duration,
        /// Skip the province.
        #[arg(long)]
        city_only: bool,
    },
    /// The reference city in one process, in real time, with the operators' dashboard on
    /// localhost: real nodes and voters with a synthetic workload (grid events, escalations,
    /// plate reads, AIS from a fleet sailing around a protected area, sanctions writes), the
    /// city node's HTTP API, and the city voter's operator API with the dashboard, from which
    /// sites can be cut off, healed, powered off and on. Prints the dashboard's address (with
    /// the demo's operator token in it) and runs until interrupted.
    Demo {
        /// Where the dashboard and the operator API listen.
        #[arg(long, default_value = "127.0.0.1:7700")]
        listen: std::net::SocketAddr,
        /// Sites in the city (176 is the reference city).
        #[arg(long, default_value_t = simulations::topology::REFERENCE_NODES as u64, value_parser = clap::value_parser!(u64).range(3..=MAX_NODES as u64))]
        nodes: u64,
        /// Virtual seconds per wall second (1: real time).
        #[arg(long, default_value_t = 1.0, value_parser = speed)]
        speed: f64,
        /// Mean time between two operations of one site.
        #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = humantime::parse_duration)]
        op_interval: Duration,
        /// Stop after this much virtual time (default: run until interrupted).
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Run a generated city with a steady workload and power cuts, heal, and print the figures:
    /// `figure trace_hash=HEX` (a hash of every datagram delivered and every durable write, in
    /// order: the same seed gives the same hash in any process), `figure seq_conflicts=N`
    /// (entries held under one (origin, seq) with two contents anywhere), `figure lost_acked=N`
    /// (entries acknowledged to their producer but missing at the city after the heal) and
    /// `ratio virtual_vs_wall=X`.
    ///
    /// Exits 0 when the run kept its promises (no conflicts, nothing lost, converged after the
    /// heal), 1 when it did not (the expected outcome with --inject-bug), 2 on bad arguments or
    /// a run that could not be built.
    Trace {
        /// Nodes in the generated city (1 city, then counties, towns and harbours in the
        /// reference city's proportions: 176 is the reference city).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=MAX_NODES as u64))]
        nodes: u64,
        /// The run's seed: everything random in the run derives from it.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Virtual time the workload runs, e.g. 10m, 90s, 2h (the heal comes after it).
        #[arg(long = "virtual", value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Power cuts, at seeded moments, each aimed at a node's flush under way and followed by
        /// a restart on the same disk 2 to 30 virtual seconds later.
        #[arg(long, default_value_t = 0)]
        crashes: usize,
        /// Break a mechanism on purpose (see the values).
        #[arg(long, value_enum, value_name = "BUG")]
        inject_bug: Vec<Bug>,
        /// Longest the mesh may take to converge after the heal (virtual time).
        #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
        heal_limit: Duration,
        /// Mean virtual time between two operations of one node.
        #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
        op_interval: Duration,
        /// No progress lines on standard error.
        #[arg(long)]
        quiet: bool,
    },
}

fn speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.1..=100.0).contains(&x) => Ok(x),
        _ => Err(format!("{s:?}: a speed is a number from 0.1 to 100")),
    }
}

/// A demo runs this long unless told otherwise: a year, longer than anyone watches.
const DEMO_FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

fn demo(
    listen: std::net::SocketAddr,
    nodes: usize,
    speed: f64,
    op_interval: Duration,
    duration: Option<Duration>,
    seed: u64,
) -> ExitCode {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return usage(format!("cannot make a directory for the demo's fence: {e}")),
    };
    let boundary = dir.path().join("protected-waters.geojson");
    if let Err(e) = std::fs::write(&boundary, simulations::demo::DEMO_BOUNDARY) {
        return usage(format!("cannot write {}: {e}", boundary.display()));
    }
    let token = match node::auth::generate_token() {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let mut scenario = scenario::bench(nodes, true, duration.unwrap_or(DEMO_FOREVER));
    scenario.name = "demo".into();
    scenario.summary = "yiwang-sim demo".into();
    scenario.workload.op_interval = op_interval;
    scenario.workload.list_write_interval = Duration::from_secs(120);
    eprintln!("[yiwang-sim] starting {nodes} sites and their voters…");
    let ready = Box::new(move |s: &simulations::demo::Serving| {
        // Written, not println!: a reader that has gone (a script that took the first line)
        // must not stop the demo.
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "dashboard: {}", s.url());
        let _ = writeln!(out, "operator API: http://{} (token {})", s.dashboard, s.token);
        let _ = writeln!(out, "city node API: http://{} (same token)", s.city_api);
        let _ = writeln!(out, "running at {speed}x real time; Ctrl-C stops");
        let _ = out.flush();
    });
    let live = simulations::demo::Live::new(speed, listen, token, boundary, ready);
    let options = options(seed, &[], Some(Duration::from_secs(300)));
    match simulations::run::run_live(&scenario, &options, live) {
        Ok(r) => {
            println!("demo ended after {:.0} s of virtual time", r.virtual_s);
            ExitCode::SUCCESS
        }
        Err(e) => usage(e),
    }
}

/// Progress every this much virtual time, unless quiet.
const PROGRESS_EVERY: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error,openraft=off".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();
    match cli.command {
        Command::Run { scenario, seed, inject_bug, report, quiet } => {
            let scenario = match Scenario::load(&scenario) {
                Ok(s) => s,
                Err(e) => return usage(e),
            };
            let options = options(seed, &inject_bug, (!quiet).then_some(PROGRESS_EVERY));
            run_and_judge(&scenario, &options, report.as_deref(), quiet)
        }
        Command::Replay { report, quiet } => {
            let (scenario, options, trace) = match read_report(&report) {
                Ok(r) => r,
                Err(e) => return usage(e),
            };
            let options = RunOptions { progress: (!quiet).then_some(PROGRESS_EVERY), ..options };
            let r = match run(&scenario, &options) {
                Ok(r) => r,
                Err(e) => return usage(e),
            };
            print_run(&r);
            if r.trace_hash == trace {
                println!("replayed: the trace is the same ({trace})");
            } else {
                println!("replayed: the trace differs: {} now, {trace} in the report", r.trace_hash);
            }
            println!("{}", verdict(&r));
            exit_for(r.passed() && r.trace_hash == trace)
        }
        Command::List => {
            for (name, text) in SHIPPED {
                match Scenario::parse(name, text) {
                    Ok(s) => println!("{name:<18} {}", s.summary),
                    Err(e) => println!("{name:<18} (does not parse: {e})"),
                }
            }
            ExitCode::SUCCESS
        }
        Command::Explore { seeds, from, scenario, inject_bug, report } => {
            let fixed = match scenario.as_deref().map(Scenario::load).transpose() {
                Ok(s) => s,
                Err(e) => return usage(e),
            };
            let mut failed = Vec::new();
            for seed in from..from.saturating_add(seeds) {
                let s = fixed.clone().unwrap_or_else(|| scenario::random(seed));
                let options = options(seed, &inject_bug, None);
                let r = match run(&s, &options) {
                    Ok(r) => r,
                    Err(e) => return usage(e),
                };
                let failing: Vec<&str> = r.checks.iter().filter(|c| !c.passed).map(|c| c.name).collect();
                eprintln!(
                    "[yiwang-sim] seed {seed}: {} ({} faults, {:.0}x)",
                    if failing.is_empty() { "PASS".to_string() } else { format!("FAIL {}", failing.join(",")) },
                    r.faults.len(),
                    r.virtual_vs_wall()
                );
                if !failing.is_empty() {
                    for c in r.checks.iter().filter(|c| !c.passed) {
                        eprintln!("[yiwang-sim]   {}: {}", c.name, c.detail);
                    }
                    if let Some(dir) = &report {
                        let dir = dir.join(format!("seed-{seed}"));
                        if let Err(e) = write_report(&dir, &r) {
                            return usage(format!("cannot write the report into {}: {e}", dir.display()));
                        }
                        eprintln!("[yiwang-sim]   report: {}", dir.join("report.json").display());
                    }
                    let bugs: String = inject_bug
                        .iter()
                        .map(|b| format!(" --inject-bug {}", b.to_possible_value().expect("named").get_name()))
                        .collect();
                    let target = match &scenario {
                        Some(s) => format!("yiwang-sim run {s} --seed {seed}{bugs}"),
                        None => format!("yiwang-sim explore --seeds 1 --from {seed}{bugs}"),
                    };
                    println!("failing seed={seed} checks={} replay: {target}", failing.join(","));
                    failed.push(seed);
                }
            }
            println!("explored: {} seeds from {from}, {} failed", seeds, failed.len());
            exit_for(failed.is_empty())
        }
        Command::Demo { listen, nodes, speed, op_interval, duration, seed } => {
            demo(listen, nodes as usize, speed, op_interval, duration, seed)
        }
        Command::Bench { duration, province, city_only } => {
            let mut runs =
                vec![("virtual_vs_wall", scenario::bench(simulations::topology::REFERENCE_NODES, true, duration))];
            if !city_only {
                runs.push((
                    "province_virtual_vs_wall",
                    scenario::bench(10 * simulations::topology::REFERENCE_NODES, false, province),
                ));
            }
            let mut figures = Vec::new();
            for (name, s) in runs {
                eprintln!(
                    "[yiwang-sim] bench: {} sites, {} of virtual time",
                    s.topology.shape().nodes(),
                    humantime::format_duration(s.duration)
                );
                let r = match run(&s, &options(1, &[], Some(PROGRESS_EVERY * 5))) {
                    Ok(r) => r,
                    Err(e) => return usage(e),
                };
                if !r.passed() {
                    eprintln!("[yiwang-sim] bench: {} did not pass its checks", s.name);
                    print_run(&r);
                    return ExitCode::from(1);
                }
                eprintln!(
                    "[yiwang-sim] bench: {:.0} s virtual in {:.1} s wall, {} operations, {} datagrams",
                    r.virtual_s, r.wall_s, r.ops_acknowledged, r.datagrams
                );
                figures.push(format!("ratio {name}={:.1}", r.virtual_vs_wall()));
            }
            for f in figures {
                println!("{f}");
            }
            ExitCode::SUCCESS
        }
        Command::Trace { nodes, seed, duration, crashes, inject_bug, heal_limit, op_interval, quiet } => {
            if duration.is_zero() || op_interval.is_zero() {
                eprintln!("yiwang-sim: --virtual and --op-interval must be longer than zero");
                return ExitCode::from(2);
            }
            let options = TraceOptions {
                nodes: nodes as usize,
                seed,
                duration,
                crashes,
                bugs: options(seed, &inject_bug, None).bugs,
                heal_limit,
                op_interval,
                progress: (!quiet).then_some(PROGRESS_EVERY),
            };
            if !quiet {
                eprintln!(
                    "[yiwang-sim] {nodes} nodes, seed {seed}, {} of virtual time, {crashes} power cuts{}",
                    humantime::format_duration(duration),
                    if inject_bug.is_empty() { String::new() } else { format!(", injected: {inject_bug:?}") }
                );
            }
            let report = match run_trace(&options) {
                Ok(r) => r,
                Err(e) => return usage(e),
            };
            for c in report.seq_conflicts.iter().take(5) {
                eprintln!(
                    "[yiwang-sim] conflict: {} {}/{} differs between {} and {}",
                    c.kind, c.origin, c.seq, c.holders.0, c.holders.1
                );
            }
            match report.converged_after() {
                Some(t) => println!("figure converged_after_heal={:.1} s", t.as_secs_f64()),
                None => eprintln!(
                    "[yiwang-sim] the mesh did not converge within {}",
                    humantime::format_duration(heal_limit)
                ),
            }
            println!("figure power_cuts={}", report.crashes);
            println!("figure power_cuts_in_flush={}", report.crashes_in_flush);
            println!("figure operations_acknowledged={}", report.ops_acknowledged);
            println!("figure datagrams={}", report.datagrams);
            println!("figure durable_writes={}", report.durable_writes);
            println!("figure trace_hash={}", report.trace_hash);
            println!("figure seq_conflicts={}", report.seq_conflicts.len());
            println!("figure lost_acked={}", report.lost_acked);
            println!("ratio virtual_vs_wall={:.1}", report.virtual_vs_wall());
            exit_for(report.passed())
        }
    }
}

fn usage(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("yiwang-sim: {e}");
    ExitCode::from(2)
}

fn exit_for(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn run_and_judge(scenario: &Scenario, options: &RunOptions, report: Option<&Path>, quiet: bool) -> ExitCode {
    if !quiet {
        eprintln!(
            "[yiwang-sim] {}: {} (seed {}, {} of virtual time, {} faults)",
            scenario.name,
            scenario.summary,
            options.seed,
            humantime::format_duration(scenario.duration),
            scenario.faults.len()
        );
    }
    let r = match run(scenario, options) {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    print_run(&r);
    if let Some(dir) = report {
        if let Err(e) = write_report(dir, &r) {
            return usage(format!("cannot write the report into {}: {e}", dir.display()));
        }
        eprintln!("[yiwang-sim] report written to {}", dir.join("report.json").display());
    }
    println!("{}", verdict(&r));
    exit_for(r.passed())
}

fn print_run(r: &RunReport) {
    for f in &r.faults {
        let ended = f.ended_s.map_or("-".to_string(), |e| format!("{e:.0}s"));
        let evidence = match &f.evidence {
            Ok(e) => format!("happened: {e}"),
            Err(e) => format!("DID NOT HAPPEN: {e}"),
        };
        println!("fault {} {} [{}] {:.0}s..{ended}: {evidence}", f.fault, f.kind, f.targets.join(","), f.began_s);
    }
    for c in &r.checks {
        println!("check {}: {} ({})", c.name, if c.passed { "PASS" } else { "FAIL" }, c.detail);
    }
    for h in &r.heals {
        match h.converged_after_s {
            Some(t) => println!("heal after fault {} at {:.0}s: caught up in {t:.1} s", h.fault, h.healed_s),
            None => println!("heal after fault {} at {:.0}s: NOT caught up within the bound", h.fault, h.healed_s),
        }
    }
    if let Some(t) = r.converged_after() {
        println!("figure converged_after_heal={:.1} s", t.as_secs_f64());
    }
    if let Some(t) = r.heals.iter().filter_map(|h| h.converged_after_s).reduce(f64::max) {
        println!("figure slowest_catch_up={t:.1} s");
    }
    println!("figure operations_acknowledged={}", r.ops_acknowledged);
    println!("figure list_writes_committed={}", r.list_writes_committed);
    println!("figure list_writes_refused={}", r.list_writes_refused);
    println!("figure sanctions_hits={}", r.sanctions_hits);
    println!("figure power_cuts={}", r.crashes);
    println!("figure supervised_restarts={}", r.supervised_restarts);
    println!("ratio virtual_vs_wall={:.1}", r.virtual_vs_wall());
}

fn verdict(r: &RunReport) -> String {
    format!(
        "verdict: {} scenario={} seed={} virtual={:.0}s wall={:.1}s trace={}",
        if r.passed() { "PASS" } else { "FAIL" },
        r.scenario,
        r.seed,
        r.virtual_s,
        r.wall_s,
        r.trace_hash
    )
}

fn write_report(dir: &Path, r: &RunReport) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_vec_pretty(r).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("report.json"), json)?;
    std::fs::write(dir.join("report.html"), simulations::report::html(r))
}

/// What a report.json says to rerun: its scenario, its options and its trace.
fn read_report(path: &Path) -> Result<(Scenario, RunOptions, String), String> {
    #[derive(serde::Deserialize)]
    struct Saved {
        spec: Scenario,
        seed: u64,
        bugs: Vec<String>,
        trace_hash: String,
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let saved: Saved =
        serde_json::from_str(&text).map_err(|e| format!("{}: not a yiwang-sim report: {e}", path.display()))?;
    let mut list = Vec::new();
    for b in &saved.bugs {
        list.push(Bug::from_str(b, true).map_err(|_| format!("{}: unknown injected bug {b:?}", path.display()))?);
    }
    Ok((saved.spec, options(saved.seed, &list, None), saved.trace_hash))
}
