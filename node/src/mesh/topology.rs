//! The topology file: every site of the mesh, its role, its QUIC address and its parents, in
//! one TOML file that every node holds a copy of (format in docs/topology.md).
//!
//! ```toml
//! [[site]]
//! id = "city"
//! role = "city"
//! mesh = "127.0.0.1:7900"     # UDP address of the site's QUIC endpoint
//! http = "127.0.0.1:7800"     # optional: where its HTTP API listens (for generated configs)
//! raft = "127.0.0.1:7950"     # optional: its yiwang-control voter of the sanctions lists
//! parents = []                # preferred parent first, then fallbacks
//!
//! [[site]]
//! id = "county-wendeng"
//! role = "county"
//! mesh = "127.0.0.1:7901"
//! raft = "127.0.0.1:7951"
//! parents = ["city"]
//!
//! [[site]]
//! id = "town-zhangjiachan"
//! role = "town"
//! mesh = "127.0.0.1:7910"
//! parents = ["county-wendeng", "city"]
//! ```
//!
//! Rules, each checked with an error naming the site: ids are unique valid node ids that can
//! name a certificate; roles are city, county, town or harbour; there is exactly one city and
//! it has no parents; every other site has at least one parent; parents exist, are listed once
//! and are of a higher tier (city above county above town and harbour), which also rules out
//! cycles; mesh (and http) addresses are distinct with a non-zero port; only city and county
//! sites have a `raft` address (the voters), distinct from every mesh address.

use super::pki;
use proto::{NodeId, Role};
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;

/// Largest topology file read.
pub const MAX_TOPOLOGY_BYTES: u64 = 1 << 20;
/// Most sites in one topology.
pub const MAX_SITES: usize = 4096;
/// Most parents one site may list.
pub const MAX_PARENTS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot read topology {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("topology {path} is {size} bytes; the limit is {MAX_TOPOLOGY_BYTES}")]
    TooLarge { path: String, size: u64 },
    #[error("topology: {0}")]
    Syntax(String),
    #[error("topology: site {site}: {message}")]
    Site { site: String, message: String },
    #[error("topology: {0}")]
    Mesh(String),
    #[error("topology {path}: {source}")]
    InFile { path: String, source: Box<TopologyError> },
}

/// A tier: higher serves lower. City 3, county 2, town and harbour 1.
pub fn tier(role: Role) -> u8 {
    match role {
        Role::City => 3,
        Role::County => 2,
        Role::Town | Role::Harbour => 1,
    }
}

/// One site of the mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub id: NodeId,
    pub role: Role,
    /// UDP address of the site's QUIC endpoint.
    pub mesh: SocketAddr,
    /// Where the site's HTTP API listens, if the file says.
    pub http: Option<SocketAddr>,
    /// Where the site's `yiwang-control` voter listens (UDP), if it runs one: the sites that
    /// have one are the sanctions lists' voters. City and county sites only.
    pub raft: Option<SocketAddr>,
    /// Preferred parent first, then fallbacks.
    pub parents: Vec<NodeId>,
    /// Where the site is, for maps (the operators' dashboard); optional.
    pub position: Option<Position>,
}

/// A site's place on the map: WGS 84 degrees, checked finite and in range.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Position {
    pub lat: f64,
    pub lon: f64,
}

// Positions are finite (checked where they are made), so equality is an equivalence.
impl Eq for Position {}

impl Position {
    pub fn new(lat: f64, lon: f64) -> Result<Position, String> {
        if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
            return Err(format!("latitude {lat} is not between -90 and 90"));
        }
        if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
            return Err(format!("longitude {lon} is not between -180 and 180"));
        }
        Ok(Position { lat, lon })
    }

    /// The `i`th of `n` places spaced evenly on a ring `radius` degrees (of latitude) around
    /// this one, turned by `turn` of a step (so rings around one centre can interleave): how
    /// generated cities place their sites, and how maps place a site the file gives no
    /// position around its parent.
    pub fn on_ring(self, radius: f64, i: usize, n: usize, turn: f64) -> Position {
        let angle = std::f64::consts::TAU * (i as f64 + turn) / n.max(1) as f64;
        // A degree of longitude is shorter than one of latitude away from the equator.
        let lon = self.lon + radius * angle.cos() / self.lat.to_radians().cos().max(0.01);
        let lat = (self.lat + radius * angle.sin()).clamp(-90.0, 90.0);
        Position { lat, lon: (lon + 180.0).rem_euclid(360.0) - 180.0 }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    site: Vec<RawSite>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    id: String,
    role: String,
    mesh: String,
    #[serde(default)]
    http: Option<String>,
    #[serde(default)]
    raft: Option<String>,
    #[serde(default)]
    parents: Vec<String>,
    /// `[latitude, longitude]` in degrees.
    #[serde(default)]
    position: Option<[f64; 2]>,
}

/// The whole mesh. Valid by construction; queries for a site that is not in it return
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    sites: Vec<Site>,
    index: HashMap<NodeId, usize>,
    /// For each site, the sites listing it as a parent, in file order.
    children: Vec<Vec<usize>>,
}

impl Topology {
    /// Reads and checks a topology file of at most [`MAX_TOPOLOGY_BYTES`].
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let shown = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|source| TopologyError::Read { path: shown.clone(), source })?;
        if meta.len() > MAX_TOPOLOGY_BYTES {
            return Err(TopologyError::TooLarge { path: shown, size: meta.len() });
        }
        let text =
            std::fs::read_to_string(path).map_err(|source| TopologyError::Read { path: shown.clone(), source })?;
        if text.len() as u64 > MAX_TOPOLOGY_BYTES {
            return Err(TopologyError::TooLarge { path: shown, size: text.len() as u64 });
        }
        Topology::parse(&text).map_err(|e| TopologyError::InFile { path: shown, source: Box::new(e) })
    }

    /// Parses and checks topology text.
    pub fn parse(text: &str) -> Result<Topology, TopologyError> {
        if text.len() as u64 > MAX_TOPOLOGY_BYTES {
            return Err(TopologyError::Syntax(format!("{} bytes; the limit is {MAX_TOPOLOGY_BYTES}", text.len())));
        }
        let raw: RawFile = toml::from_str(text).map_err(|e| TopologyError::Syntax(e.to_string()))?;
        if raw.site.len() > MAX_SITES {
            return Err(TopologyError::Mesh(format!("{} sites; the limit is {MAX_SITES}", raw.site.len())));
        }
        let sites =
            raw.site.into_iter().enumerate().map(|(i, s)| site_from_raw(i, s)).collect::<Result<Vec<_>, _>>()?;
        Topology::from_sites(sites)
    }

    /// Checks a list of sites (the rules in the module docs).
    pub fn from_sites(sites: Vec<Site>) -> Result<Topology, TopologyError> {
        let err = |site: &NodeId, message: String| TopologyError::Site { site: site.to_string(), message };
        if sites.is_empty() {
            return Err(TopologyError::Mesh("no [[site]] at all; a mesh needs at least the city".into()));
        }
        let mut index = HashMap::new();
        let mut mesh_addrs: HashMap<SocketAddr, &NodeId> = HashMap::new();
        let mut http_addrs: HashMap<SocketAddr, &NodeId> = HashMap::new();
        for (i, s) in sites.iter().enumerate() {
            if index.insert(s.id.clone(), i).is_some() {
                return Err(err(&s.id, "the id is used by more than one site".into()));
            }
            pki::check_cert_name(&s.id).map_err(|e| err(&s.id, e.to_string()))?;
            if s.mesh.port() == 0 {
                return Err(err(&s.id, format!("mesh address {} needs a port other than 0: peers dial it", s.mesh)));
            }
            if let Some(other) = mesh_addrs.insert(s.mesh, &s.id) {
                return Err(err(&s.id, format!("mesh address {} is also {other}'s", s.mesh)));
            }
            if let Some(raft) = s.raft {
                if !proto::authz::may_vote(s.role) {
                    return Err(err(&s.id, format!("a {} site cannot be a voter of the sanctions lists (raft = {raft}); only the city and counties vote", s.role)));
                }
                if raft.port() == 0 {
                    return Err(err(&s.id, format!("raft address {raft} needs a port other than 0: voters dial it")));
                }
                if let Some(other) = mesh_addrs.insert(raft, &s.id) {
                    return Err(err(&s.id, format!("raft address {raft} is also {other}'s")));
                }
            }
            if let Some(http) = s.http {
                if let Some(other) = http_addrs.insert(http, &s.id) {
                    if http.port() != 0 {
                        return Err(err(&s.id, format!("http address {http} is also {other}'s")));
                    }
                }
            }
        }
        let cities: Vec<&Site> = sites.iter().filter(|s| s.role == Role::City).collect();
        match cities[..] {
            [_] => {}
            [] => return Err(TopologyError::Mesh("there is no site with role \"city\"; exactly one is needed".into())),
            _ => {
                let ids: Vec<&str> = cities.iter().map(|s| s.id.as_str()).collect();
                return Err(TopologyError::Mesh(format!(
                    "{} sites have role \"city\" ({}); exactly one is allowed",
                    ids.len(),
                    ids.join(", ")
                )));
            }
        }
        let mut children = vec![Vec::new(); sites.len()];
        for (i, s) in sites.iter().enumerate() {
            if s.role == Role::City && !s.parents.is_empty() {
                return Err(err(&s.id, "the city has no parents; remove its `parents`".into()));
            }
            if s.role != Role::City && s.parents.is_empty() {
                return Err(err(
                    &s.id,
                    format!("a {} needs at least one parent, or nothing it does reaches the city", s.role),
                ));
            }
            if s.parents.len() > MAX_PARENTS {
                return Err(err(&s.id, format!("{} parents; the limit is {MAX_PARENTS}", s.parents.len())));
            }
            let mut seen = HashSet::new();
            for p in &s.parents {
                if !seen.insert(p) {
                    return Err(err(&s.id, format!("parent {p} is listed twice")));
                }
                if *p == s.id {
                    return Err(err(&s.id, "a site cannot be its own parent".into()));
                }
                let Some(&pi) = index.get(p) else {
                    return Err(err(&s.id, format!("parent {p} is not a site in this topology")));
                };
                children[pi].push(i);
            }
        }
        // Tiers make a cycle impossible, but a cycle is the worse mistake to report, and this
        // keeps the walks below finite whatever the tier rule becomes.
        if let Some(cycle) = find_cycle(&sites, &index) {
            let path: Vec<&str> = cycle.iter().map(|&i| sites[i].id.as_str()).collect();
            return Err(err(&sites[cycle[0]].id, format!("parent chain loops: {}", path.join(" -> "))));
        }
        for s in &sites {
            for p in &s.parents {
                let parent = &sites[index[p]];
                if tier(parent.role) <= tier(s.role) {
                    return Err(err(
                        &s.id,
                        format!(
                            "parent {p} is a {}, which is not above a {} (city > county > town, harbour)",
                            parent.role, s.role
                        ),
                    ));
                }
            }
        }
        Ok(Topology { sites, index, children })
    }

    /// Every site, in file order.
    pub fn sites(&self) -> &[Site] {
        &self.sites
    }

    pub fn site(&self, id: &NodeId) -> Option<&Site> {
        self.index.get(id).map(|&i| &self.sites[i])
    }

    /// The city site.
    pub fn city(&self) -> &Site {
        self.sites.iter().find(|s| s.role == Role::City).expect("validated: exactly one city")
    }

    /// `id`'s parents, preferred first then the fallbacks, in file order.
    pub fn parents(&self, id: &NodeId) -> &[NodeId] {
        self.site(id).map(|s| &s.parents[..]).unwrap_or(&[])
    }

    /// The sites that list `id` as a parent (preferred or fallback), in file order.
    pub fn children(&self, id: &NodeId) -> Vec<&NodeId> {
        match self.index.get(id) {
            Some(&i) => self.children[i].iter().map(|&c| &self.sites[c].id).collect(),
            None => Vec::new(),
        }
    }

    /// `id` and every site whose parent chains, through any parent, preferred or fallback,
    /// lead to `id`: the origins whose entries `id` may relay upwards. Empty for an unknown id.
    pub fn subtree(&self, id: &NodeId) -> BTreeSet<NodeId> {
        let mut out = BTreeSet::new();
        let Some(&root) = self.index.get(id) else { return out };
        let mut stack = vec![root];
        while let Some(i) = stack.pop() {
            if out.insert(self.sites[i].id.clone()) {
                stack.extend(self.children[i].iter().copied());
            }
        }
        out
    }

    /// Whether `origin` is `id` or in `id`'s subtree.
    pub fn in_subtree(&self, id: &NodeId, origin: &NodeId) -> bool {
        if id == origin {
            return self.index.contains_key(id);
        }
        // Walk up from the origin: the parent graph is small and shallow.
        let mut stack = vec![origin];
        let mut seen = HashSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                continue;
            }
            for p in self.parents(n) {
                if p == id {
                    return true;
                }
                stack.push(p);
            }
        }
        false
    }

    /// The sites `id` links with directly: its parents (in preference order), then its
    /// children (in file order).
    pub fn neighbours(&self, id: &NodeId) -> Vec<&NodeId> {
        let mut out: Vec<&NodeId> = self.parents(id).iter().collect();
        for c in self.children(id) {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }
}

fn site_from_raw(i: usize, raw: RawSite) -> Result<Site, TopologyError> {
    let name = if raw.id.is_empty() { format!("#{} (no id)", i + 1) } else { format!("{:?}", raw.id) };
    let err = |message: String| TopologyError::Site { site: name.clone(), message };
    let id = NodeId::new(raw.id.clone()).map_err(|e| err(e.to_string()))?;
    let role: Role = raw.role.parse().map_err(|e: proto::IdError| err(e.to_string()))?;
    let mesh: SocketAddr = raw
        .mesh
        .parse()
        .map_err(|_| err(format!("mesh = {:?} is not an IP address and port such as \"10.0.0.1:7900\"", raw.mesh)))?;
    let http = match raw.http {
        None => None,
        Some(h) => Some(
            h.parse::<SocketAddr>()
                .map_err(|_| err(format!("http = {h:?} is not an IP address and port such as \"127.0.0.1:7800\"")))?,
        ),
    };
    let raft = match raw.raft {
        None => None,
        Some(r) => Some(
            r.parse::<SocketAddr>()
                .map_err(|_| err(format!("raft = {r:?} is not an IP address and port such as \"10.0.0.1:7950\"")))?,
        ),
    };
    let parents = raw
        .parents
        .into_iter()
        .map(|p| NodeId::new(p.clone()).map_err(|e| err(format!("parent {p:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let position = match raw.position {
        None => None,
        Some([lat, lon]) => Some(Position::new(lat, lon).map_err(|e| err(format!("position: {e}")))?),
    };
    Ok(Site { id, role, mesh, http, raft, parents, position })
}

/// A parent chain that comes back to where it started, as the list of sites along it.
fn find_cycle(sites: &[Site], index: &HashMap<NodeId, usize>) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut marks = vec![Mark::New; sites.len()];
    for start in 0..sites.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // Iterative depth-first walk along parents; `path` holds (site, next parent to try).
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::OnPath;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            if let Some(p) = sites[node].parents.get(*next) {
                *next += 1;
                let pi = index[p];
                match marks[pi] {
                    Mark::New => {
                        marks[pi] = Mark::OnPath;
                        path.push((pi, 0));
                    }
                    Mark::OnPath => {
                        let from = path.iter().position(|&(n, _)| n == pi).expect("on the path");
                        let mut cycle: Vec<usize> = path[from..].iter().map(|&(n, _)| n).collect();
                        cycle.push(pi);
                        return Some(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                path.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn ids(v: &[&str]) -> Vec<NodeId> {
        v.iter().map(|s| id(s)).collect()
    }

    const EXAMPLE: &str = r#"
[[site]]
id = "city"
role = "city"
mesh = "127.0.0.1:7900"
http = "127.0.0.1:7800"
parents = []

[[site]]
id = "county-wendeng"
role = "county"
mesh = "127.0.0.1:7901"
parents = ["city"]

[[site]]
id = "county-rongcheng"
role = "county"
mesh = "127.0.0.1:7902"
parents = ["city"]

[[site]]
id = "town-zhangjiachan"
role = "town"
mesh = "127.0.0.1:7910"
parents = ["county-wendeng", "city"]

[[site]]
id = "town-yazi"
role = "town"
mesh = "127.0.0.1:7911"
parents = ["county-rongcheng", "county-wendeng"]

[[site]]
id = "harbour-shidao"
role = "harbour"
mesh = "127.0.0.1:7920"
parents = ["county-rongcheng"]
"#;

    /// A site block for the error cases.
    fn site(id: &str, role: &str, port: u16, parents: &[&str]) -> String {
        let parents: Vec<String> = parents.iter().map(|p| format!("{p:?}")).collect();
        format!(
            "[[site]]\nid = {id:?}\nrole = {role:?}\nmesh = \"127.0.0.1:{port}\"\nparents = [{}]\n",
            parents.join(", ")
        )
    }

    fn refused(text: &str) -> String {
        Topology::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn the_module_example_parses() {
        let example = crate::doc_toml_example(include_str!("topology.rs"));
        let t = Topology::parse(&example).unwrap();
        assert_eq!(t.sites().len(), 3);
        assert_eq!(t.city().http, Some("127.0.0.1:7800".parse().unwrap()));
        assert_eq!(t.parents(&id("town-zhangjiachan")), &ids(&["county-wendeng", "city"])[..]);
    }

    #[test]
    fn queries_follow_preferred_and_fallback_parents() {
        let t = Topology::parse(EXAMPLE).unwrap();
        assert_eq!(t.city().id, id("city"));
        let town = t.site(&id("town-zhangjiachan")).unwrap();
        assert_eq!(town.role, Role::Town);
        assert_eq!(town.mesh, "127.0.0.1:7910".parse().unwrap());
        assert_eq!(town.http, None);
        assert!(t.site(&id("nowhere")).is_none());
        assert!(t.parents(&id("nowhere")).is_empty());
        assert_eq!(t.parents(&id("town-yazi")), &ids(&["county-rongcheng", "county-wendeng"])[..]);

        let children = |s: &str| t.children(&id(s)).into_iter().cloned().collect::<Vec<_>>();
        assert_eq!(children("city"), ids(&["county-wendeng", "county-rongcheng", "town-zhangjiachan"]));
        assert_eq!(children("county-wendeng"), ids(&["town-zhangjiachan", "town-yazi"]));
        assert_eq!(children("county-rongcheng"), ids(&["town-yazi", "harbour-shidao"]));
        assert!(children("harbour-shidao").is_empty());

        let subtree = |s: &str| t.subtree(&id(s)).into_iter().collect::<Vec<_>>();
        assert_eq!(subtree("county-wendeng"), ids(&["county-wendeng", "town-yazi", "town-zhangjiachan"]));
        assert_eq!(subtree("county-rongcheng"), ids(&["county-rongcheng", "harbour-shidao", "town-yazi"]));
        assert_eq!(subtree("city").len(), 6);
        assert_eq!(subtree("harbour-shidao"), ids(&["harbour-shidao"]));
        assert!(subtree("nowhere").is_empty());
        for s in t.sites() {
            for o in t.sites() {
                assert_eq!(t.in_subtree(&s.id, &o.id), t.subtree(&s.id).contains(&o.id), "{} {}", s.id, o.id);
            }
        }
        assert!(!t.in_subtree(&id("nowhere"), &id("nowhere")));

        let neighbours = |s: &str| t.neighbours(&id(s)).into_iter().cloned().collect::<Vec<_>>();
        assert_eq!(neighbours("county-wendeng"), ids(&["city", "town-zhangjiachan", "town-yazi"]));
        assert_eq!(neighbours("town-zhangjiachan"), ids(&["county-wendeng", "city"]));
        assert_eq!(neighbours("city"), ids(&["county-wendeng", "county-rongcheng", "town-zhangjiachan"]));
    }

    #[test]
    fn positions_are_optional_and_checked() {
        let city = |position: &str| {
            format!("[[site]]\nid = \"city\"\nrole = \"city\"\nmesh = \"127.0.0.1:7900\"\n{position}\n")
        };
        let t = Topology::parse(&city("position = [37.5131, 122.1204]")).unwrap();
        assert_eq!(t.city().position, Some(Position { lat: 37.5131, lon: 122.1204 }));
        assert_eq!(Topology::parse(&city("")).unwrap().city().position, None);
        let e = refused(&city("position = [122.12, 37.51]"));
        assert!(e.contains("\"city\"") && e.contains("latitude 122.12"), "{e}");
        assert!(refused(&city("position = [37.5, 190.0]")).contains("longitude 190"));
        assert!(refused(&city("position = [37.5]")).contains("position"));
    }

    #[test]
    fn mistakes_are_named() {
        let city = site("city", "city", 7900, &[]);
        let county = site("county-a", "county", 7901, &["city"]);

        let err = refused(&format!("{city}{}", site("Town A", "town", 7910, &["city"])));
        assert!(err.contains("\"Town A\"") && err.contains("lower-case"), "{err}");
        let err = refused(&format!("{city}{}", site("town-a", "mayor", 7910, &["city"])));
        assert!(err.contains("town-a") && err.contains("mayor"), "{err}");
        let err = refused(&format!("{city}{}{}", county, site("county-a", "county", 7902, &["city"])));
        assert!(err.contains("site county-a") && err.contains("more than one site"), "{err}");
        let err = refused(&format!("{city}{}", site("123", "town", 7910, &["city"])));
        assert!(err.contains("site 123") && err.contains("DNS name"), "{err}");
        let err = refused(&format!("{city}{}", site("town-a", "town", 7910, &["county-x"])));
        assert!(err.contains("site town-a") && err.contains("county-x is not a site"), "{err}");
        let err = refused(&format!("{city}{}", site("town-a", "town", 7910, &[])));
        assert!(err.contains("site town-a") && err.contains("at least one parent"), "{err}");
        let err = refused(&format!("{city}{}", site("county-b", "county", 7910, &[])));
        assert!(err.contains("site county-b") && err.contains("at least one parent"), "{err}");
        let err = refused(&format!("{city}{}", site("town-a", "town", 7910, &["city", "city"])));
        assert!(err.contains("listed twice"), "{err}");
        let err = refused(&county);
        assert!(err.contains("no site with role \"city\""), "{err}");
        let err = refused(&format!("{city}{}", site("city-2", "city", 7902, &[])));
        assert!(err.contains("city, city-2") && err.contains("exactly one"), "{err}");
        let err = refused(&format!("{}{}", site("city", "city", 7900, &["county-a"]), county));
        assert!(err.contains("site city") && err.contains("no parents"), "{err}");
        let err = refused(&format!("{city}{county}{}", site("county-b", "county", 7902, &["county-a"])));
        assert!(err.contains("site county-b") && err.contains("not above"), "{err}");
        let err = refused(&format!("{city}{county}{}", site("harbour-a", "harbour", 7902, &["county-a", "town-a"]),));
        assert!(err.contains("town-a is not a site"), "{err}");
        let err = refused(&format!(
            "{city}{county}{}{}",
            site("town-a", "town", 7910, &["county-a"]),
            site("harbour-a", "harbour", 7911, &["town-a"])
        ));
        assert!(err.contains("site harbour-a") && err.contains("parent town-a is a town"), "{err}");
        let err = refused(&format!(
            "{city}{}{}",
            site("county-a", "county", 7901, &["county-b"]),
            site("county-b", "county", 7902, &["county-a"])
        ));
        assert!(err.contains("loops: county-a -> county-b -> county-a"), "{err}");
        let err = refused(&format!("{city}{}", site("county-a", "county", 7900, &["city"])));
        assert!(err.contains("site county-a") && err.contains("also city's"), "{err}");
        let err = refused(&format!("{city}{}", site("county-a", "county", 0, &["city"])));
        assert!(err.contains("port other than 0"), "{err}");
        let err = refused(&format!("{city}[[site]]\nid = \"county-a\"\nrole = \"county\"\nmesh = \"wendeng:7901\"\n"));
        assert!(err.contains("site \"county-a\"") && err.contains("wendeng:7901"), "{err}");
        let err = refused(&format!("{city}colour = \"blue\"\n"));
        assert!(err.contains("colour"), "{err}");
        let err = refused("");
        assert!(err.contains("no [[site]]"), "{err}");
        let err = refused(&"x".repeat(MAX_TOPOLOGY_BYTES as usize + 1));
        assert!(err.contains("limit"), "{err}");
    }

    #[test]
    fn load_names_the_file_and_caps_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("topology.toml");
        std::fs::write(&path, EXAMPLE).unwrap();
        assert_eq!(Topology::load(&path).unwrap(), Topology::parse(EXAMPLE).unwrap());
        std::fs::write(&path, "[[site]]\nid = \"x\"\n").unwrap();
        let err = Topology::load(&path).unwrap_err().to_string();
        assert!(err.contains("topology.toml") && err.contains("role"), "{err}");
        std::fs::write(&path, vec![b'#'; MAX_TOPOLOGY_BYTES as usize + 1]).unwrap();
        assert!(matches!(Topology::load(&path), Err(TopologyError::TooLarge { .. })));
        assert!(matches!(Topology::load(&dir.path().join("none.toml")), Err(TopologyError::Read { .. })));
    }

    #[test]
    fn cycles_are_found_in_any_parent_graph() {
        let mk = |id: &str, parents: &[&str]| Site {
            id: NodeId::new(id).unwrap(),
            role: Role::Town,
            mesh: "127.0.0.1:1".parse().unwrap(),
            http: None,
            raft: None,
            parents: ids(parents),
            position: None,
        };
        let sites = vec![mk("a", &["b"]), mk("b", &["c", "d"]), mk("c", &[]), mk("d", &["a"])];
        let index: HashMap<NodeId, usize> = sites.iter().enumerate().map(|(i, s)| (s.id.clone(), i)).collect();
        let cycle = find_cycle(&sites, &index).unwrap();
        let names: Vec<&str> = cycle.iter().map(|&i| sites[i].id.as_str()).collect();
        assert_eq!(names, ["a", "b", "d", "a"]);
        let sites = vec![mk("a", &["b", "c"]), mk("b", &["c"]), mk("c", &[])];
        let index: HashMap<NodeId, usize> = sites.iter().enumerate().map(|(i, s)| (s.id.clone(), i)).collect();
        assert_eq!(find_cycle(&sites, &index), None);
    }

    #[test]
    fn voters_are_city_and_county_sites_with_a_raft_address() {
        let t = Topology::parse(&crate::doc_toml_example(include_str!("topology.rs"))).unwrap();
        let voters: Vec<&str> = t.sites().iter().filter(|s| s.raft.is_some()).map(|s| s.id.as_str()).collect();
        assert_eq!(voters, ["city", "county-wendeng"]);
        let town = "[[site]]\nid = \"city\"\nrole = \"city\"\nmesh = \"127.0.0.1:7900\"\n\
                    [[site]]\nid = \"town-a\"\nrole = \"town\"\nmesh = \"127.0.0.1:7910\"\nraft = \"127.0.0.1:7950\"\nparents = [\"city\"]\n";
        let e = Topology::parse(town).unwrap_err().to_string();
        assert!(e.contains("town-a") && e.contains("only the city and counties vote"), "{e}");
        let clash = "[[site]]\nid = \"city\"\nrole = \"city\"\nmesh = \"127.0.0.1:7900\"\nraft = \"127.0.0.1:7900\"\n";
        assert!(Topology::parse(clash).unwrap_err().to_string().contains("raft address 127.0.0.1:7900 is also city's"));
        let bad = "[[site]]\nid = \"city\"\nrole = \"city\"\nmesh = \"127.0.0.1:7900\"\nraft = \"city:7950\"\n";
        assert!(Topology::parse(bad).unwrap_err().to_string().contains("not an IP address"));
    }
}
