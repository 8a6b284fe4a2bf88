//! ONVIF event subscriptions: for each configured camera with an `onvif` table the node
//! subscribes to the camera's event service itself (a WS-BaseNotification pull point) instead
//! of waiting for JSON. Its events go through the camera feed's commit like JSON ones, so the
//! watchdog, signal-loss alerts and durable commit are the same.
//!
//! - [`soap`] writes the requests (SOAP 1.2, WS-Addressing, WS-Security UsernameToken);
//! - [`parse`] reads the answers, within bounds, whatever prefixes the camera uses;
//! - [`subscription`] decides what to send when, as a state machine without I/O;
//! - [`client`] carries its decisions out over HTTP and hands events to the feed.
//!
//! The flow: GetSystemDateAndTime at the device service (tokens are dated by the camera's
//! clock), GetCapabilities (Events) there for the event service's address,
//! CreatePullPointSubscription there, then PullMessages in a loop at the subscription's address,
//! Renew at half of the termination time, Unsubscribe when the node stops.

pub mod client;
pub mod parse;
pub mod soap;
pub mod subscription;

use crate::config::OnvifSpec;
use std::time::Duration;

/// The most a camera may add to a PullMessages' timeout before the request is given up, and the
/// deadline of every other request.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Bounds on the configuration: a pull timeout outside them is a mistake.
pub const MIN_PULL_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_PULL_TIMEOUT: Duration = Duration::from_secs(300);

/// Check a camera's ONVIF settings; `heartbeat_s` is the camera's watchdog interval.
pub fn validate(spec: &OnvifSpec, heartbeat_s: u64) -> Result<(), String> {
    client::Target::parse(&spec.url).map_err(|e| e.to_string())?;
    if spec.pull_timeout < MIN_PULL_TIMEOUT || spec.pull_timeout > MAX_PULL_TIMEOUT {
        return Err(format!("pull_timeout must be between {MIN_PULL_TIMEOUT:?} and {MAX_PULL_TIMEOUT:?}"));
    }
    // The renewal is sent between two pulls: the longest a pull can hold it back, plus the
    // renewal's own deadline, must fit in the half of the termination time left after renew_at.
    let longest_wait = spec.pull_timeout + REQUEST_DEADLINE * 2;
    if spec.renew / 2 < longest_wait {
        return Err(format!("renew must be at least {:?} with this pull_timeout", longest_wait * 2));
    }
    // An idle camera answers a pull every pull_timeout; the watchdog must not call that silence.
    if Duration::from_secs(heartbeat_s) <= spec.pull_timeout + REQUEST_DEADLINE {
        return Err(format!(
            "heartbeat_s must be longer than pull_timeout plus {}s (an idle camera answers that often)",
            REQUEST_DEADLINE.as_secs()
        ));
    }
    if spec.message_limit == 0 || spec.message_limit as usize > parse::MAX_MESSAGES {
        return Err(format!("message_limit must be 1 to {}", parse::MAX_MESSAGES));
    }
    if spec.password.expose().len() > 256 || spec.username.len() > 256 {
        return Err("username and password must be at most 256 bytes".into());
    }
    Ok(())
}
