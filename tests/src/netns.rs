//! A lab of network namespaces for real-process mesh tests: each site in a namespace of its
//! own, its `eth0` a veth pair to a bridge in a hub namespace; the test process reaches every
//! site through one more veth from its own namespace to the bridge (the only thing the lab adds
//! outside its namespaces, removed with them). Cuts are nftables rules in the sites'
//! namespaces. A degraded link is `tc netem` both ways (loss, duplication, delay, jitter, rate)
//! where the kernel has netem; where it does not (these CI machines' kernels), loss and
//! duplication are nftables rules (`numgen random`, `dup`) on the site's traffic with the other
//! sites (the harness stands for the site's local users), the rate a `tbf` qdisc both ways, and
//! delay and jitter cannot be made: [`Lab::degrade`] says so.
//!
//! Needs root, `ip`, `tc` and `nft` (Debian's `nftables`); [`Lab::unavailable`] says what is
//! missing so a test can skip with a clear message. Namespaces a killed test left behind are
//! removed by the next lab.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

/// The nftables table the lab keeps its cuts in, in each site's namespace.
const TABLE: &str = "yiwang_lab";
/// The table of a degraded link's loss and duplication (without netem).
const DEGRADE_TABLE: &str = "yiwang_lab_degrade";
/// The queue a rate-limited link holds before it drops, as the simulator's fabric does.
const RATE_QUEUE: &str = "500ms";

/// What a degraded link does to packets, each way.
#[derive(Debug, Clone, Default)]
pub struct Degradation {
    /// Shares of packets lost and duplicated, 0 to 1.
    pub loss: f64,
    pub duplicate: f64,
    pub delay: std::time::Duration,
    pub jitter: std::time::Duration,
    /// Bytes per second.
    pub rate: Option<u64>,
}

/// One site's place in the lab.
#[derive(Debug, Clone)]
pub struct LabSite {
    pub id: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    /// Its veth's end on the bridge, in the hub namespace.
    port: String,
}

pub struct Lab {
    hub: String,
    /// The test's end of its veth to the bridge, in the test's own namespace.
    harness_if: String,
    pub harness_ip: Ipv4Addr,
    pub sites: Vec<LabSite>,
    /// Per site, the peers whose traffic it drops.
    cuts: BTreeMap<String, BTreeSet<Ipv4Addr>>,
    /// Whether the kernel has netem.
    netem: bool,
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn run_with_input(program: &str, args: &[&str], input: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    child.stdin.take().expect("piped").write_all(input.as_bytes()).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {}: {}\n{input}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Lab {
    /// Why no lab can be made on this machine, if none can.
    pub fn unavailable() -> Option<String> {
        for (tool, package) in [("ip", "iproute2"), ("tc", "iproute2"), ("nft", "nftables")] {
            if Command::new(tool).arg("-V").output().is_err() {
                return Some(format!("`{tool}` is not installed (Debian package {package})"));
            }
        }
        let probe = format!("yw-probe-{}", std::process::id());
        if let Err(e) = run("ip", &["netns", "add", &probe]) {
            return Some(format!("cannot make network namespaces here (root is needed): {e}"));
        }
        let nft = run("ip", &["netns", "exec", &probe, "nft", "list", "tables"]);
        let _ = run("ip", &["netns", "del", &probe]);
        nft.err().map(|e| format!("nftables does not work in a namespace here: {e}"))
    }

    /// A lab with a namespace per site of `ids`, addressed in a /24 of its own.
    pub fn new(ids: &[String]) -> Result<Lab, String> {
        assert!(ids.len() < 250, "a lab holds at most 249 sites");
        let pid = std::process::id();
        // A /24 per test process, so labs of two processes never meet.
        let net = [10, 213, (pid % 250) as u8];
        let ip = |host: u8| Ipv4Addr::new(net[0], net[1], net[2], host);
        let hub = format!("yw{pid}-hub");
        let harness_if = format!("yw{pid}h");
        remove_stale_labs();
        let mut lab = Lab {
            hub: hub.clone(),
            harness_if: harness_if.clone(),
            harness_ip: ip(254),
            sites: vec![],
            cuts: BTreeMap::new(),
            netem: false,
        };
        run("ip", &["netns", "add", &hub])?;
        lab.netem = run("tc", &["-n", &hub, "qdisc", "add", "dev", "lo", "root", "netem"]).is_ok();
        run("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &hub, "link", "set", "br0", "up"])?;
        for (i, id) in ids.iter().enumerate() {
            let netns = format!("yw{pid}-{i}");
            run("ip", &["netns", "add", &netns])?;
            // Pushed into the lab before anything else can fail, so Drop removes it.
            let port = format!("s{i}");
            lab.sites.push(LabSite { id: id.clone(), netns: netns.clone(), ip: ip(i as u8 + 1), port: port.clone() });
            run("ip", &["link", "add", "eth0", "netns", &netns, "type", "veth", "peer", "name", &port, "netns", &hub])?;
            run("ip", &["-n", &netns, "addr", "add", &format!("{}/24", ip(i as u8 + 1)), "dev", "eth0"])?;
            run("ip", &["-n", &netns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &netns, "link", "set", "lo", "up"])?;
            run("ip", &["-n", &hub, "link", "set", &port, "master", "br0", "up"])?;
        }
        run("ip", &["link", "add", &harness_if, "type", "veth", "peer", "name", "harness", "netns", &hub])?;
        run("ip", &["addr", "add", &format!("{}/24", lab.harness_ip), "dev", &harness_if])?;
        run("ip", &["link", "set", &harness_if, "up"])?;
        run("ip", &["-n", &hub, "link", "set", "harness", "master", "br0", "up"])?;
        Ok(lab)
    }

    pub fn site(&self, id: &str) -> &LabSite {
        self.sites.iter().find(|s| s.id == id).unwrap_or_else(|| panic!("{id} is not in the lab"))
    }

    /// `ip netns exec <site's namespace>`, to put before a program and its arguments.
    pub fn exec_prefix(&self, id: &str) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.site(id).netns.clone()]
    }

    /// Drop everything between `a` and each of `others`, both ways (rules on both sides).
    pub fn cut(&mut self, a: &str, others: &[String]) -> Result<(), String> {
        let ip_a = self.site(a).ip;
        for o in others {
            let ip_o = self.site(o).ip;
            self.cuts.entry(a.to_string()).or_default().insert(ip_o);
            self.cuts.entry(o.clone()).or_default().insert(ip_a);
        }
        let mut touched: Vec<String> = others.to_vec();
        touched.push(a.to_string());
        for id in touched {
            self.apply_cuts(&id)?;
        }
        Ok(())
    }

    /// Every cut made with [`Lab::cut`] involving `a`, undone.
    pub fn heal(&mut self, a: &str) -> Result<(), String> {
        let ip_a = self.site(a).ip;
        let mut touched = vec![a.to_string()];
        if let Some(peers) = self.cuts.remove(a) {
            for p in peers {
                let id = self.sites.iter().find(|s| s.ip == p).map(|s| s.id.clone()).expect("a lab site");
                if let Some(theirs) = self.cuts.get_mut(&id) {
                    theirs.remove(&ip_a);
                }
                touched.push(id);
            }
        }
        for id in touched {
            self.apply_cuts(&id)?;
        }
        Ok(())
    }

    /// Rewrite `id`'s table from its set of cut peers.
    fn apply_cuts(&self, id: &str) -> Result<(), String> {
        let netns = &self.site(id).netns;
        let _ = run("ip", &["netns", "exec", netns, "nft", "delete", "table", "inet", TABLE]);
        let peers = self.cuts.get(id).cloned().unwrap_or_default();
        if peers.is_empty() {
            return Ok(());
        }
        let set: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
        let set = set.join(", ");
        let rules = format!(
            "table inet {TABLE} {{\n\
               chain input {{ type filter hook input priority 0; policy accept; ip saddr {{ {set} }} counter drop; }}\n\
               chain output {{ type filter hook output priority 0; policy accept; ip daddr {{ {set} }} counter drop; }}\n\
             }}\n"
        );
        run_with_input("ip", &["netns", "exec", netns, "nft", "-f", "-"], &rules)
    }

    /// Packets `id`'s cuts have dropped so far (both chains).
    pub fn dropped_by_cuts(&self, id: &str) -> u64 {
        let netns = &self.site(id).netns;
        run("ip", &["netns", "exec", netns, "nft", "list", "table", "inet", TABLE]).map(|t| counted(&t)).unwrap_or(0)
    }

    /// Whether degraded links get netem (delay and jitter included).
    pub fn has_netem(&self) -> bool {
        self.netem
    }

    /// `id`'s link degraded both ways. `Ok` says what could not be made on this kernel.
    pub fn degrade(&self, id: &str, d: &Degradation) -> Result<String, String> {
        let site = self.site(id);
        let ends = [(&site.netns, "eth0"), (&self.hub, site.port.as_str())];
        let percent = |share: f64| format!("{}%", share * 100.0);
        let rate = d.rate.map(|bytes| format!("{}bit", bytes * 8));
        if self.netem {
            let (loss, duplicate) = (percent(d.loss), percent(d.duplicate));
            let (delay, jitter) = (format!("{}ms", d.delay.as_millis()), format!("{}ms", d.jitter.as_millis()));
            let mut netem = vec!["loss", &loss, "duplicate", &duplicate, "delay", &delay, &jitter];
            if let Some(rate) = &rate {
                netem.extend(["rate", rate.as_str()]);
            }
            for (netns, dev) in ends {
                let mut args = vec!["-n", netns, "qdisc", "replace", "dev", dev, "root", "netem"];
                args.extend_from_slice(&netem);
                run("tc", &args)?;
            }
            return Ok(String::new());
        }
        // Without netem: loss and duplication by nftables in the site's namespace, both ways;
        // duplicates are sent to each peer address (`dup` needs one). The loss is on the link to
        // the other sites only: the harness stands for the site's own users, who reach its API
        // locally, not over its radio link (20% loss on the harness's own requests made a
        // connect time out now and then, and the site look unavailable when it was not).
        let per_10000 = |share: f64| (share * 10_000.0).round() as u32;
        let harness = self.harness_ip;
        let mut output =
            format!("ip daddr != {harness} numgen random mod 10000 < {} counter drop;\n", per_10000(d.loss));
        if d.duplicate > 0.0 {
            for peer in self.sites.iter().filter(|s| s.id != id).map(|s| s.ip) {
                output.push_str(&format!(
                    "ip daddr {peer} numgen random mod 10000 < {} dup to {peer};\n",
                    per_10000(d.duplicate)
                ));
            }
        }
        let rules = format!(
            "table ip {DEGRADE_TABLE} {{\n\
               chain input {{ type filter hook input priority 0; policy accept; ip saddr != {harness} numgen random mod 10000 < {} counter drop; }}\n\
               chain output {{ type filter hook output priority 0; policy accept;\n{output}}}\n\
             }}\n",
            per_10000(d.loss)
        );
        run_with_input("ip", &["netns", "exec", &site.netns, "nft", "-f", "-"], &rules)?;
        if let Some(rate) = &rate {
            for (netns, dev) in ends {
                let args = [
                    "-n", netns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate, "burst", "16kb",
                    "latency", RATE_QUEUE,
                ];
                run("tc", &args)?;
            }
        }
        let missing = !d.delay.is_zero() || !d.jitter.is_zero();
        Ok(if missing { "delay and jitter not made: this kernel has no netem".into() } else { String::new() })
    }

    /// `id`'s link whole again.
    pub fn restore(&self, id: &str) {
        let site = self.site(id);
        let _ = run("ip", &["netns", "exec", &site.netns, "nft", "delete", "table", "ip", DEGRADE_TABLE]);
        for (netns, dev) in [(&site.netns, "eth0"), (&self.hub, site.port.as_str())] {
            let _ = run("tc", &["-n", netns, "qdisc", "del", "dev", dev, "root"]);
        }
    }

    /// Packets `id`'s degraded link has dropped so far, both ways (netem's or tbf's drops,
    /// and nftables' losses).
    pub fn dropped_by_degrade(&self, id: &str) -> u64 {
        let site = self.site(id);
        let queued: u64 = [(&site.netns, "eth0"), (&self.hub, site.port.as_str())]
            .into_iter()
            .filter_map(|(netns, dev)| run("tc", &["-n", netns, "-s", "qdisc", "show", "dev", dev]).ok())
            .filter_map(|text| {
                text.split("dropped ").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok()
            })
            .sum();
        let lost = run("ip", &["netns", "exec", &site.netns, "nft", "list", "table", "ip", DEGRADE_TABLE])
            .map(|text| counted(&text))
            .unwrap_or(0);
        queued + lost
    }
}

/// The packets of every `counter` in an `nft list` text.
fn counted(text: &str) -> u64 {
    text.split("counter packets ").skip(1).filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok()).sum()
}

/// Namespaces and links of labs whose test process is gone (killed before its Drop ran).
fn remove_stale_labs() {
    let alive = |pid: &str| Path::new("/proc").join(pid).exists();
    let Ok(list) = run("ip", &["netns", "list"]) else { return };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name.strip_prefix("yw").and_then(|rest| rest.split('-').next()) else { continue };
        if !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit()) && !alive(pid) {
            let _ = run("ip", &["netns", "del", name]);
            let _ = run("ip", &["link", "del", &format!("yw{pid}h")]);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth ends and their peers.
        for s in &self.sites {
            let _ = run("ip", &["netns", "del", &s.netns]);
        }
        let _ = run("ip", &["link", "del", &self.harness_if]);
        let _ = run("ip", &["netns", "del", &self.hub]);
    }
}
