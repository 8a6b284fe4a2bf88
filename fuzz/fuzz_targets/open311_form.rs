#![no_main]
//! The Open311 (GeoReport v2) parameter parser: `application/x-www-form-urlencoded` pairs from
//! a query string and a POST body (`node::api::open311::form::Params`), then the checks
//! `create_request` and `list_requests` run on them before they need the store: unknown
//! parameters, single-valued parameters, the location (`open311::location`), the description's
//! length, attributes, `media_url` (`open311::check_url`), service request ids
//! (`events::parse_id`), status lists and dates (`api::time::parse_rfc3339`).
//!
//! The input is the query string, a newline, then the body.

use libfuzzer_sys::fuzz_target;
use node::api::open311::{
    self,
    form::{quote, Params},
    ALWAYS, CONTACT_FIELDS,
};

fn post(p: &Params) -> Result<(), open311::Open311Error> {
    let _key = p.one("api_key")?;
    let mut known = vec!["service_code", "lat", "long", "address_string", "address_id", "description", "media_url"];
    known.extend(CONTACT_FIELDS);
    known.extend(ALWAYS);
    p.only(&known, true)?;
    let _code = p.one("service_code")?;
    let _location = open311::location(p)?;
    if let Some(d) = p.one("description")? {
        let _ = d.chars().count() > open311::MAX_DESCRIPTION_CHARS;
    }
    let _attributes = p.attributes();
    if let Some(url) = p.one("media_url")? {
        open311::check_url(url)?;
    }
    let _ = p.one("address_id")?;
    for field in CONTACT_FIELDS {
        if let Some(v) = p.one(field)? {
            let _ = v.trim().to_string();
        }
    }
    Ok(())
}

fn get(p: &Params) -> Result<(), open311::Open311Error> {
    let known =
        ["service_request_id", "service_code", "start_date", "end_date", "status", "jurisdiction_id", "api_key"];
    p.only(&known, false)?;
    for raw in p.list("service_request_id") {
        if node::events::parse_id(raw).is_none() {
            let _ = quote(raw);
        }
    }
    let _ = p.list("service_code");
    let _ = p.list("status");
    for name in ["start_date", "end_date"] {
        if let Some(t) = p.one(name)? {
            let _ = node::api::time::parse_rfc3339(t);
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let (query, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let mut p = Params::default();
    if p.extend_from(query, "query string").is_err() {
        return;
    }
    let mut q = Params::default();
    let _ = q.extend_from(query, "query string").map(|()| get(&q));
    if p.extend_from(body, "body").is_err() {
        return;
    }
    let _ = post(&p);
    if let Ok(s) = std::str::from_utf8(body) {
        let _ = quote(s);
    }
});
