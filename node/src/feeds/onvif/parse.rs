//! Reading a camera's answers, within bounds: the body's size, the elements' depth, the
//! messages in one pull, the SimpleItems of a message and every text's length. Names are
//! matched by their local part (vendors bind the SOAP, WS-Addressing and ONVIF namespaces to
//! whatever prefixes they like, and a few use older WS-Addressing namespaces); a topic's prefix
//! is resolved against the namespaces in scope, so any prefix bound to ONVIF's topic namespace
//! becomes `tns1:`.
//!
//! One pass reads every kind of answer the node asks for; the caller takes what its request
//! expects: a SOAP Fault, the event service's address (GetCapabilities), the subscription's
//! address and times (CreatePullPointSubscription, Renew), notifications (PullMessages).

use super::soap::NS_TOPICS;
use crate::feeds::camera::{is_onvif_topic, MAX_ITEMS, MAX_ITEM_BYTES, MAX_TOPIC_BYTES};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, QName, ResolveResult};
use quick_xml::reader::NsReader;

/// The largest answer read; a camera's PullMessagesResponse of 100 events is some 100 KiB.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Deepest element nesting accepted (a notification's SimpleItem is at depth 8).
pub const MAX_DEPTH: usize = 32;
/// Notifications kept from one answer; the node asks for at most this many.
pub const MAX_MESSAGES: usize = 1000;
/// Longest text kept: an address, a fault's reason, a time.
const MAX_TEXT_BYTES: usize = 2048;

/// One `wsnt:NotificationMessage`, bounded like a JSON camera event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// `tns1:RuleEngine/LineDetector/Crossed`, or a vendor's prefix for its own topics.
    pub topic: String,
    /// The `tt:Message`'s `UtcTime` in ms since the epoch, if it had a readable one.
    pub utc_ms: Option<u64>,
    pub source: Vec<(String, String)>,
    pub data: Vec<(String, String)>,
}

/// A SOAP 1.2 Fault: `Code/Value`, the innermost `Subcode/Value` (both QNames, kept whole), and
/// the first `Reason/Text`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fault {
    pub code: String,
    pub subcode: Option<String>,
    pub reason: String,
}

impl Fault {
    /// Whether the camera refused our credentials (ONVIF's `ter:NotAuthorized`, WS-Security's
    /// `wsse:FailedAuthentication` and kin).
    pub fn is_auth(&self) -> bool {
        let local = |q: &str| q.rsplit(':').next().unwrap_or(q).to_string();
        [Some(&self.code), self.subcode.as_ref()].into_iter().flatten().map(|c| local(c)).any(|c| {
            matches!(
                c.as_str(),
                "NotAuthorized" | "FailedAuthentication" | "InvalidSecurity" | "InvalidSecurityToken" | "FailedCheck"
            )
        })
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(s) = &self.subcode {
            write!(f, "/{s}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// What one answer said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub fault: Option<Fault>,
    /// `Capabilities/Events/XAddr` (GetCapabilitiesResponse).
    pub events_xaddr: Option<String>,
    /// `SubscriptionReference/Address` (CreatePullPointSubscriptionResponse).
    pub subscription: Option<String>,
    /// `CurrentTime` and `TerminationTime` (Create and Renew responses), ms since the epoch.
    pub current_time_ms: Option<u64>,
    pub termination_time_ms: Option<u64>,
    pub messages: Vec<Notification>,
    /// Notifications left out, each by reason (`bad_topic`, `too_many_items`,
    /// `too_many_messages`), for the decode-error metric.
    pub dropped: Vec<&'static str>,
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("the answer is {0} bytes; the limit is {MAX_BODY_BYTES}")]
    TooLarge(usize),
    #[error("elements nest deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("not well-formed XML: {0}")]
    Xml(#[from] quick_xml::Error),
    #[error("bad attribute: {0}")]
    Attribute(#[from] quick_xml::events::attributes::AttrError),
    #[error("the answer ends inside an element")]
    Truncated,
    #[error("not a SOAP envelope")]
    NotSoap,
}

impl ParseError {
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::TooLarge(_) => "too_large",
            ParseError::TooDeep => "too_deep",
            ParseError::Xml(_) | ParseError::Attribute(_) | ParseError::Truncated => "xml",
            ParseError::NotSoap => "not_soap",
        }
    }
}

/// A notification being read.
#[derive(Default)]
struct Building {
    topic: Option<String>,
    utc_ms: Option<u64>,
    source: Vec<(String, String)>,
    data: Vec<(String, String)>,
    /// Why it will be left out, once it broke a bound.
    refused: Option<&'static str>,
}

/// `2026-11-30T18:00:00Z`, `...00.123+08:00`, or without a zone (read as UTC, as some cameras
/// write it), to ms since the epoch.
pub fn parse_utc_ms(s: &str) -> Option<u64> {
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    let t = time::OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(&format!("{s}Z"), &Rfc3339))
        .ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

fn local(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// Read `body`. Structural trouble (too big, too deep, not XML, not SOAP) refuses the whole
/// answer; a notification that breaks a bound is left out and counted in [`Answer::dropped`].
pub fn parse(body: &[u8]) -> Result<Answer, ParseError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ParseError::TooLarge(body.len()));
    }
    let mut reader = NsReader::from_reader(body);
    let mut answer = Answer::default();
    // Local names of the open elements, outermost first.
    let mut path: Vec<String> = Vec::with_capacity(MAX_DEPTH);
    let mut text = String::new();
    let mut text_overflow = false;
    let mut building: Option<Building> = None;
    let mut saw_envelope = false;

    loop {
        let (_, event) = reader.read_resolved_event()?;
        match event {
            Event::Start(e) => {
                if path.len() >= MAX_DEPTH {
                    return Err(ParseError::TooDeep);
                }
                let name = local(e.local_name().as_ref());
                if path.is_empty() {
                    if name != "Envelope" {
                        return Err(ParseError::NotSoap);
                    }
                    saw_envelope = true;
                }
                open(&e, &name, &path, &mut answer, &mut building)?;
                path.push(name);
                text.clear();
                text_overflow = false;
            }
            Event::Empty(e) => {
                if path.len() >= MAX_DEPTH {
                    return Err(ParseError::TooDeep);
                }
                let name = local(e.local_name().as_ref());
                if path.is_empty() {
                    return Err(ParseError::NotSoap);
                }
                open(&e, &name, &path, &mut answer, &mut building)?;
                // An empty NotificationMessage has no topic: close it at once.
                if name == "NotificationMessage" {
                    finish(&mut answer, building.take());
                }
            }
            Event::Text(t) => {
                let s = t.unescape()?;
                append(&mut text, &mut text_overflow, &s);
            }
            Event::CData(c) => {
                let raw = c.into_inner();
                append(&mut text, &mut text_overflow, &String::from_utf8_lossy(&raw));
            }
            Event::End(_) => {
                let Some(name) = path.pop() else { return Err(ParseError::NotSoap) };
                let parent = path.last().map(String::as_str).unwrap_or("");
                let value = if text_overflow { None } else { Some(text.trim()) };
                close(&reader, &name, parent, value, &mut answer, &mut building);
                text.clear();
                text_overflow = false;
            }
            Event::Eof => {
                if !path.is_empty() {
                    return Err(ParseError::Truncated);
                }
                break;
            }
            // Declarations, comments, processing instructions, a DOCTYPE (whose entities
            // quick-xml never expands): nothing to read.
            _ => {}
        }
    }
    if !saw_envelope {
        return Err(ParseError::NotSoap);
    }
    Ok(answer)
}

fn append(text: &mut String, overflow: &mut bool, s: &str) {
    if text.len() + s.len() > MAX_TEXT_BYTES {
        *overflow = true;
    } else if !*overflow {
        text.push_str(s);
    }
}

/// An element opens (or is empty): notifications start here, and their `Message` and
/// `SimpleItem`s carry their data in attributes.
fn open(
    e: &BytesStart,
    name: &str,
    path: &[String],
    answer: &mut Answer,
    building: &mut Option<Building>,
) -> Result<(), ParseError> {
    let parent = path.last().map(String::as_str).unwrap_or("");
    match name {
        "Fault" if parent == "Body" => answer.fault = Some(Fault::default()),
        "NotificationMessage" => {
            if answer.messages.len() + building.iter().count() >= MAX_MESSAGES {
                answer.dropped.push("too_many_messages");
                *building = None;
            } else {
                *building = Some(Building::default());
            }
        }
        // The inner `tt:Message` (the one with UtcTime) inside the `wsnt:Message`.
        "Message" if building.is_some() => {
            let b = building.as_mut().expect("checked");
            for a in e.attributes() {
                let a = a?;
                if a.key.local_name().as_ref() == b"UtcTime" {
                    b.utc_ms = parse_utc_ms(&a.unescape_value()?);
                }
            }
        }
        "SimpleItem" if building.is_some() && (parent == "Source" || parent == "Data") => {
            let b = building.as_mut().expect("checked");
            let (mut item_name, mut item_value) = (None, None);
            for a in e.attributes() {
                let a = a?;
                match a.key.local_name().as_ref() {
                    b"Name" => item_name = Some(a.unescape_value()?.into_owned()),
                    b"Value" => item_value = Some(a.unescape_value()?.into_owned()),
                    _ => {}
                }
            }
            let list = if parent == "Source" { &mut b.source } else { &mut b.data };
            match (item_name, item_value) {
                (Some(n), Some(v))
                    if n.len() <= MAX_ITEM_BYTES && v.len() <= MAX_ITEM_BYTES && list.len() < MAX_ITEMS =>
                {
                    list.push((n, v));
                }
                // A SimpleItem without a name or value says nothing; skip it.
                (None, _) | (_, None) => {}
                _ => b.refused = Some("too_many_items"),
            }
        }
        _ => {}
    }
    Ok(())
}

/// An element closes with `text` (`None` if it was too long): the texts the node reads.
fn close(
    reader: &NsReader<&[u8]>,
    name: &str,
    parent: &str,
    text: Option<&str>,
    answer: &mut Answer,
    building: &mut Option<Building>,
) {
    match (parent, name) {
        ("NotificationMessage", "Topic") => {
            if let Some(b) = building.as_mut() {
                match text {
                    Some(t) if t.len() <= MAX_TOPIC_BYTES => b.topic = Some(normalise_topic(reader, t)),
                    _ => b.refused = Some("bad_topic"),
                }
            }
        }
        (_, "NotificationMessage") => finish(answer, building.take()),
        ("Events", "XAddr") => answer.events_xaddr = text.filter(|t| !t.is_empty()).map(str::to_string),
        ("SubscriptionReference", "Address") => {
            answer.subscription = text.filter(|t| !t.is_empty()).map(str::to_string)
        }
        (_, "CurrentTime") if building.is_none() => answer.current_time_ms = text.and_then(parse_utc_ms),
        (_, "TerminationTime") if building.is_none() => answer.termination_time_ms = text.and_then(parse_utc_ms),
        ("Code", "Value") => {
            if let Some(f) = answer.fault.as_mut() {
                f.code = text.unwrap_or_default().to_string();
            }
        }
        ("Subcode", "Value") => {
            if let Some(f) = answer.fault.as_mut() {
                f.subcode = text.map(str::to_string);
            }
        }
        ("Reason", "Text") => {
            if let Some(f) = answer.fault.as_mut() {
                if f.reason.is_empty() {
                    f.reason = text.unwrap_or_default().to_string();
                }
            }
        }
        _ => {}
    }
}

/// `prefix:Path` with `prefix` bound to ONVIF's topic namespace becomes `tns1:Path`; any other
/// prefix is kept (a vendor's own topics).
fn normalise_topic(reader: &NsReader<&[u8]>, topic: &str) -> String {
    let Some((prefix, path)) = topic.split_once(':') else { return topic.to_string() };
    let probe = format!("{prefix}:x");
    match reader.resolve_element(QName(probe.as_bytes())).0 {
        ResolveResult::Bound(Namespace(ns)) if ns == NS_TOPICS.as_bytes() => format!("tns1:{path}"),
        _ => topic.to_string(),
    }
}

fn finish(answer: &mut Answer, building: Option<Building>) {
    let Some(b) = building else { return };
    match (b.refused, b.topic) {
        (Some(reason), _) => answer.dropped.push(reason),
        (None, Some(topic)) if is_onvif_topic(&topic) => {
            answer.messages.push(Notification { topic, utc_ms: b.utc_ms, source: b.source, data: b.data })
        }
        (None, _) => answer.dropped.push("bad_topic"),
    }
}
