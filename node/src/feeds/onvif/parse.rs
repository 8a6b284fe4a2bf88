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
    /// `SystemDateAndTime/UTCDateTime` (GetSystemDateAndTimeResponse), ms since the epoch.
    pub camera_utc_ms: Option<u64>,
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

/// ONVIF's `tt:DateTime` (Date: Year, Month, Day; Time: Hour, Minute, Second) to ms.
fn utc_date_time(parts: [Option<u32>; 6]) -> Option<u64> {
    let [Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(sec)] = parts else { return None };
    let month = time::Month::try_from(u8::try_from(mo).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?).ok()?;
    let t = time::Time::from_hms(u8::try_from(h).ok()?, u8::try_from(mi).ok()?, u8::try_from(sec).ok()?).ok()?;
    u64::try_from(date.with_time(t).assume_utc().unix_timestamp()).ok()?.checked_mul(1000)
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
    // Year, month, day, hour, minute, second of a UTCDateTime.
    let mut utc = [None::<u32>; 6];

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
                if path.iter().any(|p| p == "UTCDateTime") {
                    let at = ["Year", "Month", "Day", "Hour", "Minute", "Second"].iter().position(|f| *f == name);
                    if let (Some(at), Some(v)) = (at, value.and_then(|v| v.parse().ok())) {
                        utc[at] = Some(v);
                    }
                } else if name == "UTCDateTime" {
                    answer.camera_utc_ms = utc_date_time(utc);
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn a_pull_reads_every_notification_within_bounds() {
        let a = parse(include_bytes!("fixtures/pull_messages_response.xml")).unwrap();
        assert_eq!(a.fault, None);
        assert_eq!(a.messages.len(), 3, "{a:#?}");
        let line = &a.messages[0];
        assert_eq!(line.topic, "tns1:RuleEngine/LineDetector/Crossed");
        assert_eq!(line.utc_ms, parse_utc_ms("2008-10-10T12:24:57.321Z"));
        assert_eq!(line.utc_ms, Some(1_223_641_497_321));
        assert_eq!(
            line.source,
            vec![
                pair("VideoSourceConfigurationToken", "1"),
                pair("VideoAnalyticsConfigurationToken", "2"),
                pair("Rule", "MyImportantFence1")
            ]
        );
        assert_eq!(line.data, vec![pair("ObjectId", "15")]);
        let loss = &a.messages[1];
        assert_eq!(loss.topic, "tns1:VideoSource/SignalLoss", "another prefix for ONVIF's topics becomes tns1:");
        assert_eq!(loss.utc_ms, Some(1_223_641_498_000), "a time without a zone is UTC");
        assert_eq!(loss.source, vec![pair("Source", "vs&1")]);
        let vendor = &a.messages[2];
        assert_eq!(vendor.topic, "acme:Device/Tamper", "a vendor's own prefix is kept");
        assert_eq!(vendor.utc_ms, None);
        assert_eq!(a.dropped, vec!["bad_topic", "too_many_items"]);
    }

    #[test]
    fn a_fault_is_read_and_recognised() {
        let a = parse(include_bytes!("fixtures/fault_not_authorized.xml")).unwrap();
        let f = a.fault.unwrap();
        assert_eq!(f.code, "env:Sender");
        assert_eq!(f.subcode.as_deref(), Some("ter:NotAuthorized"));
        assert_eq!(f.reason, "Sender not Authorized");
        assert!(f.is_auth());
        let other = Fault { code: "env:Receiver".into(), subcode: Some("ter:Action".into()), reason: String::new() };
        assert!(!other.is_auth());
    }

    #[test]
    fn subscription_and_capabilities_answers() {
        let a = parse(include_bytes!("fixtures/create_pull_point_response.xml")).unwrap();
        assert_eq!(a.subscription.as_deref(), Some("http://192.168.0.10/onvif/Subscription?Idx=0"));
        assert_eq!(a.termination_time_ms.unwrap() - a.current_time_ms.unwrap(), 60_000);
        let a = parse(include_bytes!("fixtures/get_capabilities_response.xml")).unwrap();
        assert_eq!(a.events_xaddr.as_deref(), Some("http://192.168.0.10/onvif/services/events"));
    }

    #[test]
    fn the_cameras_clock() {
        let a = parse(include_bytes!("fixtures/get_system_date_and_time_response.xml")).unwrap();
        assert_eq!(a.camera_utc_ms, parse_utc_ms("2026-11-30T12:34:56Z"));
        assert!(a.camera_utc_ms.is_some());
    }

    #[test]
    fn structural_trouble_refuses_the_answer() {
        assert_eq!(parse(b"").unwrap_err().reason(), "not_soap");
        assert_eq!(parse(b"<html><body>401</body></html>").unwrap_err().reason(), "not_soap");
        assert_eq!(parse(b"<s:Envelope xmlns:s='x'><s:Body>").unwrap_err().reason(), "xml");
        assert_eq!(parse(b"<Envelope><b></Envelope></b>").unwrap_err().reason(), "xml");
        let deep = format!("<Envelope>{}{}</Envelope>", "<a>".repeat(100), "</a>".repeat(100));
        assert_eq!(parse(deep.as_bytes()).unwrap_err().reason(), "too_deep");
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(parse(&big).unwrap_err().reason(), "too_large");
        // Entities are never expanded, so a DOCTYPE cannot make a small answer large.
        let laughs = b"<!DOCTYPE x [<!ENTITY a \"aaaa\">]><Envelope><Body><Topic>&a;</Topic></Body></Envelope>";
        assert!(parse(laughs).is_err());
    }

    #[test]
    fn the_number_of_messages_is_bounded() {
        let one = "<n:NotificationMessage><n:Topic>tns1:A/B</n:Topic></n:NotificationMessage>";
        let body = format!(
            "<s:Envelope xmlns:s='{}' xmlns:n='{}' xmlns:tns1='{}'><s:Body><r>{}</r></s:Body></s:Envelope>",
            super::super::soap::NS_SOAP,
            super::super::soap::NS_WSNT,
            NS_TOPICS,
            one.repeat(MAX_MESSAGES + 5)
        );
        let a = parse(body.as_bytes()).unwrap();
        assert_eq!(a.messages.len(), MAX_MESSAGES);
        assert_eq!(a.dropped, vec!["too_many_messages"; 5]);
    }

    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'>".to_string()),
            Just("<s:Body>".to_string()),
            Just("<wsnt:NotificationMessage>".to_string()),
            Just("</wsnt:NotificationMessage>".to_string()),
            Just("<wsnt:Topic>tns1:A/B</wsnt:Topic>".to_string()),
            Just("<tt:Message UtcTime='2026-01-01T00:00:00Z'>".to_string()),
            Just("<tt:Data><tt:SimpleItem Name='a' Value='b'/></tt:Data>".to_string()),
            Just("<tt:Source>".to_string()),
            Just("<tt:SimpleItem Name='a' Value='b'/>".to_string()),
            Just("</tt:Source>".to_string()),
            Just("</s:Body></s:Envelope>".to_string()),
            Just("<![CDATA[x]]>".to_string()),
            Just("&amp;&lt;&bogus;".to_string()),
            Just("<a>".to_string()),
            Just("</a>".to_string()),
            "[ -~]{0,12}",
        ]
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn near_soap_never_panics_and_stays_bounded(parts in proptest::collection::vec(fragment(), 0..120)) {
            if let Ok(a) = parse(parts.concat().as_bytes()) {
                prop_assert!(a.messages.len() <= MAX_MESSAGES);
                for m in &a.messages {
                    prop_assert!(m.source.len() <= MAX_ITEMS && m.data.len() <= MAX_ITEMS);
                    prop_assert!(m.topic.len() <= MAX_TOPIC_BYTES);
                }
            }
        }

        #[test]
        fn any_nesting_depth_is_refused_or_read(depth in 0usize..200) {
            let body = format!("<Envelope>{}{}</Envelope>", "<a>".repeat(depth), "</a>".repeat(depth));
            let r = parse(body.as_bytes());
            prop_assert_eq!(r.is_ok(), depth < MAX_DEPTH);
        }
    }
}
