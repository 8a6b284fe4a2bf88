//! `yiwang-sim`: the partition simulator's command line. A thin wrapper over the
//! `simulations` library.

use clap::{Parser, Subcommand, ValueEnum};
use node::store::InjectedBugs;
use simulations::run::{run_trace, TraceOptions};
use simulations::topology::MAX_NODES;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "yiwang-sim",
    version,
    about = "Whole yiwang meshes in one process on virtual time: real nodes, real QUIC with mutual TLS over an in-memory network, simulated disks that lose power. A run replays exactly from its seed."
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
}

#[derive(Subcommand)]
enum Command {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    match cli.command {
        Command::Trace { nodes, seed, duration, crashes, inject_bug, heal_limit, op_interval, quiet } => {
            if duration.is_zero() || op_interval.is_zero() {
                eprintln!("yiwang-sim: --virtual and --op-interval must be longer than zero");
                return ExitCode::from(2);
            }
            let bugs = InjectedBugs {
                replicate_before_durable: inject_bug.contains(&Bug::ReplicateBeforeDurable),
                commit_per_tree: inject_bug.contains(&Bug::CommitPerTree),
            };
            let options = TraceOptions {
                nodes: nodes as usize,
                seed,
                duration,
                crashes,
                bugs,
                heal_limit,
                op_interval,
                progress: (!quiet).then_some(Duration::from_secs(60)),
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
                Err(e) => {
                    eprintln!("yiwang-sim: {e}");
                    return ExitCode::from(2);
                }
            };
            for c in report.seq_conflicts.iter().take(5) {
                eprintln!(
                    "[yiwang-sim] conflict: {} {}/{} differs between {} and {}",
                    c.kind, c.origin, c.seq, c.holders.0, c.holders.1
                );
            }
            match report.converged_after {
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
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}
