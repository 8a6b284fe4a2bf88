//! GeoReport v2 in XML, the spec's primary format: every answer of a `.xml` URL, errors
//! included, is the JSON answer the handler made, written as the spec's XML shows it. The
//! root and item elements come from the resource (`<services><service>`,
//! `<service_definition>`, `<service_requests><request>`, `<errors><error>`); a field is an
//! element of its name, `null` an empty one, a list an element of the list's name holding one
//! element per item, named in the singular (`<attributes><attribute>`, `<values><value>`).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use quick_xml::escape::escape;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Largest JSON answer turned into XML: a list of the most requests one call returns is far
/// smaller.
const MAX_ANSWER_BYTES: usize = 16 << 20;

pub const CONTENT_TYPE: &str = "text/xml; charset=utf-8";

/// Middleware: answers of `.xml` URLs in XML.
pub async fn as_xml(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    if !path.ends_with(".xml") {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let json: Value = match axum::body::to_bytes(body, MAX_ANSWER_BYTES).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        Err(e) => {
            tracing::error!(error = %e, "an Open311 answer too large to write as XML");
            Value::Null
        }
    };
    let xml = document(&path, parts.status.is_client_error() || parts.status.is_server_error(), &json);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    parts.headers.remove(header::CONTENT_LENGTH);
    (parts, Body::from(xml)).into_response()
}

/// The XML document for the JSON answer `json` of `path`.
pub fn document(path: &str, error: bool, json: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    let file = path.rsplit('/').next().unwrap_or("");
    let (root, item) = if error {
        ("errors", Some("error"))
    } else if file == "services.xml" {
        ("services", Some("service"))
    } else if path.contains("/services/") || path.starts_with("services/") {
        ("service_definition", None)
    } else {
        ("service_requests", Some("request"))
    };
    match (item, json) {
        (Some(item), Value::Array(items)) => {
            out.push_str(&format!("<{root}>"));
            for v in items {
                element(&mut out, item, v);
            }
            out.push_str(&format!("</{root}>"));
        }
        _ => element(&mut out, root, json),
    }
    out.push('\n');
    out
}

/// A JSON value that keeps its fields in the order they were written (the handlers write
/// them in the spec's order, which XML readers may rely on).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Value, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> std::result::Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E>(self) -> std::result::Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_bool<E>(self, b: bool) -> std::result::Result<Value, E> {
                Ok(Value::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> std::result::Result<Value, E> {
                Ok(Value::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> std::result::Result<Value, E> {
                Ok(Value::Number(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> std::result::Result<Value, E> {
                Ok(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number))
            }
            fn visit_str<E>(self, s: &str) -> std::result::Result<Value, E> {
                Ok(Value::String(s.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = seq.next_element()? {
                    items.push(v);
                }
                Ok(Value::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
                let mut fields = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    fields.push((k, v));
                }
                Ok(Value::Object(fields))
            }
        }
        d.deserialize_any(V)
    }
}

/// The singular of a list's name: the element of each of its items.
fn singular(list: &str) -> &str {
    list.strip_suffix('s').filter(|s| !s.is_empty()).unwrap_or("item")
}

fn element(out: &mut String, name: &str, v: &Value) {
    out.push_str(&format!("<{name}>"));
    match v {
        Value::Null => {}
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&escape(s.as_str())),
        Value::Array(items) => {
            for item in items {
                element(out, singular(name), item);
            }
        }
        Value::Object(fields) => {
            for (k, v) in fields {
                element(out, k, v);
            }
        }
    }
    out.push_str(&format!("</{name}>"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn answers_are_written_as_the_spec_shows_them() {
        let services = json(
            r#"[{ "service_code": "hazard", "service_name": "Hazard & danger", "metadata": false, "group": null }]"#,
        );
        assert_eq!(
            document("/services.xml", false, &services),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<services><service><service_code>hazard</service_code>\
             <service_name>Hazard &amp; danger</service_name><metadata>false</metadata><group></group></service></services>\n"
        );
        let definition = json(r#"{ "service_code": "x", "attributes": [{ "code": "a", "values": [{ "key": 1 }] }] }"#);
        assert!(document("/services/x.xml", false, &definition).contains(
            "<service_definition><service_code>x</service_code><attributes><attribute><code>a</code>\
             <values><value><key>1</key></value></values></attribute></attributes></service_definition>"
        ));
        let error = json(r#"[{ "code": 404, "description": "no <such> request" }]"#);
        assert!(document("/requests/x.xml", true, &error).contains(
            "<errors><error><code>404</code><description>no &lt;such&gt; request</description></error></errors>"
        ));
        assert!(
            document("/tokens/t.xml", false, &json(r#"[{ "token": "t" }]"#)).contains("<service_requests><request>")
        );
    }
}
