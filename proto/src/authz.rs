//! The authorization table: which entry kinds travel which way, and which roles may originate
//! them. One table, consulted by every sender (what to offer) and every receiver (what to
//! refuse), so the two can never disagree.

use crate::entry::Kind;
use crate::ids::Role;

/// Which way an entry moves across a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From a child to its parent: towards the city.
    Up,
    /// From a parent to a child: towards the sites.
    Down,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// Whether entries of `kind` cross a link in direction `dir`.
///
/// Alerts, escalations, summaries and the audit log go up; commands (answers to escalations)
/// come down to the event's owner, committed sanctions lists down to every site; watchlists go
/// everywhere. Raw detections (plate reads among them), events and their transitions stay on
/// the site that owns them.
pub fn travels(kind: Kind, dir: Direction) -> bool {
    match kind {
        Kind::Alert | Kind::Escalation | Kind::Summary | Kind::Audit => dir == Direction::Up,
        Kind::Command | Kind::Sanctions => dir == Direction::Down,
        Kind::Watchlist => true,
        Kind::Detection | Kind::PlateRead | Kind::Event | Kind::Transition => false,
    }
}

/// Whether a node of `role` may originate entries of `kind`. Commands answer escalations, so
/// only the tiers escalations go to (county, city) issue them; sanctions lists are published
/// only by the sites whose control plane votes on them.
pub fn may_originate(role: Role, kind: Kind) -> bool {
    match kind {
        Kind::Command => matches!(role, Role::County | Role::City),
        Kind::Sanctions => may_vote(role),
        _ => true,
    }
}

/// Whether a node of `role` may take part in the sanctions lists' raft group (send raft
/// traffic, be a voter): the city and the counties, the tiers that decide lists.
pub fn may_vote(role: Role) -> bool {
    matches!(role, Role::City | Role::County)
}

/// The kinds that cross a link in direction `dir`, most urgent first: alerts and escalations,
/// then commands, sanctions lists and watchlists, then summaries, then the audit log. Catch-up
/// after a partition drains in this order ([`Kind::REPLICATED`]'s).
pub fn priority(dir: Direction) -> impl Iterator<Item = Kind> {
    Kind::REPLICATED.into_iter().filter(move |k| travels(*k, dir))
}

/// Why a received entry was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Refusal {
    #[error("entries of this kind do not travel this way")]
    WrongDirection,
    #[error("the origin is not the sender or a site below it")]
    ForeignOrigin,
    #[error("the origin's role may not originate this kind")]
    RoleMayNotOriginate,
    #[error("the origin is not a site of the topology")]
    UnknownOrigin,
    #[error("the entry is larger than any node stores")]
    TooLarge,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::WrongDirection => "wrong_direction",
            Refusal::ForeignOrigin => "foreign_origin",
            Refusal::RoleMayNotOriginate => "role_may_not_originate",
            Refusal::UnknownOrigin => "unknown_origin",
            Refusal::TooLarge => "too_large",
        }
    }
}

/// Check one received entry. `dir` is the way it moved (`Up` when the sender is our child);
/// `origin_role` is the origin's role per the topology (`None` if the origin is unknown);
/// `origin_below_sender` says whether the origin is the sender or in its subtree. Entries going
/// up may only come from the sender's own subtree: a node can originate entries only under its
/// own id, and relay only those of the sites below it.
pub fn check(kind: Kind, dir: Direction, origin_role: Option<Role>, origin_below_sender: bool) -> Result<(), Refusal> {
    if !travels(kind, dir) {
        return Err(Refusal::WrongDirection);
    }
    let role = origin_role.ok_or(Refusal::UnknownOrigin)?;
    if dir == Direction::Up && !origin_below_sender {
        return Err(Refusal::ForeignOrigin);
    }
    if !may_originate(role, kind) {
        return Err(Refusal::RoleMayNotOriginate);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        assert!(travels(Kind::Alert, Direction::Up) && !travels(Kind::Alert, Direction::Down));
        assert!(travels(Kind::Command, Direction::Down) && !travels(Kind::Command, Direction::Up));
        assert!(travels(Kind::Watchlist, Direction::Up) && travels(Kind::Watchlist, Direction::Down));
        assert!(!travels(Kind::Detection, Direction::Up) && !travels(Kind::Event, Direction::Down));
        assert!(!travels(Kind::PlateRead, Direction::Up) && !travels(Kind::PlateRead, Direction::Down));
        assert_eq!(
            priority(Direction::Up).collect::<Vec<_>>(),
            [Kind::Alert, Kind::Escalation, Kind::Watchlist, Kind::Summary, Kind::Audit]
        );
        assert_eq!(priority(Direction::Down).collect::<Vec<_>>(), [Kind::Command, Kind::Sanctions, Kind::Watchlist]);
        for kind in Kind::ALL {
            let crosses = travels(kind, Direction::Up) || travels(kind, Direction::Down);
            assert_eq!(crosses, Kind::REPLICATED.contains(&kind), "{kind}");
        }
    }

    #[test]
    fn checks() {
        use Direction::*;
        assert_eq!(check(Kind::Alert, Up, Some(Role::Town), true), Ok(()));
        assert_eq!(check(Kind::Alert, Up, Some(Role::Town), false), Err(Refusal::ForeignOrigin));
        assert_eq!(check(Kind::Alert, Down, Some(Role::City), true), Err(Refusal::WrongDirection));
        assert_eq!(check(Kind::Command, Down, Some(Role::Town), false), Err(Refusal::RoleMayNotOriginate));
        assert_eq!(check(Kind::Command, Down, Some(Role::County), false), Ok(()));
        assert_eq!(check(Kind::Watchlist, Down, Some(Role::County), false), Ok(()));
        assert_eq!(check(Kind::Watchlist, Up, None, true), Err(Refusal::UnknownOrigin));
        assert_eq!(check(Kind::Sanctions, Down, Some(Role::County), false), Ok(()));
        assert_eq!(check(Kind::Sanctions, Down, Some(Role::Town), false), Err(Refusal::RoleMayNotOriginate));
        assert_eq!(check(Kind::Sanctions, Up, Some(Role::City), true), Err(Refusal::WrongDirection));
    }
}
