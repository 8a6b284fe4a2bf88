//! The OpenAPI 3.0 document of the node's HTTP API, served at `/openapi.json`.
//!
//! The document is `openapi.json` beside this file, written by hand. Its tests here check that
//! it is OpenAPI 3.0 that a parser reads without dropping anything, that every `$ref` resolves,
//! that it describes exactly the routes the node serves (read from the router's source), and
//! that its enums are the workflow's own. `tests/tests/api.rs` validates it against the
//! official OpenAPI 3.0 JSON schema, runs its examples against a real node and checks every
//! answer of that node against it.

use axum::Json;
use serde_json::Value;
use std::sync::LazyLock;

const SOURCE: &str = include_str!("openapi.json");

static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    let mut doc: Value = serde_json::from_str(SOURCE).expect("openapi.json is JSON (its tests check)");
    doc["info"]["version"] = Value::from(env!("CARGO_PKG_VERSION"));
    doc
});

pub async fn document() -> Json<Value> {
    Json(DOCUMENT.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::{Action, Answer, EscalationStatus, Role, Step, Tier};
    use std::collections::BTreeSet;

    const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

    fn doc() -> Value {
        DOCUMENT.clone()
    }

    /// Where `parsed` (the document as a parser understood it, written back) lacks something of
    /// `original`: a key the parser does not know is dropped, so it shows up here.
    fn lost(original: &Value, parsed: &Value, at: &str, out: &mut Vec<String>) {
        match (original, parsed) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in a {
                    match b.get(k) {
                        Some(w) => lost(v, w, &format!("{at}/{k}"), out),
                        None => out.push(format!("{at}/{k}")),
                    }
                }
            }
            (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
                for (i, (v, w)) in a.iter().zip(b).enumerate() {
                    lost(v, w, &format!("{at}/{i}"), out);
                }
            }
            (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
            (a, b) if a == b => {}
            (a, b) => out.push(format!("{at}: {a} read as {b}")),
        }
    }

    #[test]
    fn is_openapi_3_0_and_the_parser_keeps_every_key() {
        let parsed: openapiv3::OpenAPI =
            serde_json::from_str(SOURCE).unwrap_or_else(|e| panic!("openapi.json is not OpenAPI 3.0: {e}"));
        assert!(parsed.openapi.starts_with("3.0."), "{}", parsed.openapi);
        let back = serde_json::to_value(&parsed).unwrap();
        let mut missing = Vec::new();
        lost(&serde_json::from_str(SOURCE).unwrap(), &back, "#", &mut missing);
        assert!(missing.is_empty(), "parts of openapi.json that are not OpenAPI 3.0 (typos?): {missing:#?}");
    }

    fn walk<'a>(v: &'a Value, at: String, f: &mut impl FnMut(&str, &'a Value)) {
        f(&at, v);
        match v {
            Value::Object(m) => m.iter().for_each(|(k, w)| walk(w, format!("{at}/{k}"), f)),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, w)| walk(w, format!("{at}/{i}"), f)),
            _ => {}
        }
    }

    fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling $ref {r}")),
            None => v,
        }
    }

    /// Every operation: `(path, method, operation)`.
    fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for m in METHODS {
                if let Some(op) = item.get(m) {
                    out.push((path.clone(), m.to_string(), op));
                }
            }
        }
        out
    }

    #[test]
    fn refs_resolve_and_operations_are_complete() {
        let doc = doc();
        let mut refs = 0;
        walk(&doc, "#".into(), &mut |at, v| {
            if let Some(r) = v.get("$ref").and_then(Value::as_str) {
                refs += 1;
                assert!(r.starts_with("#/components/"), "{at}: $ref {r} is not local");
                assert!(doc.pointer(&r[1..]).is_some(), "{at}: $ref {r} resolves to nothing");
            }
        });
        assert!(refs > 50);
        assert!(doc.get("security").is_none(), "security is given per operation");
        let mut ids = BTreeSet::new();
        for (path, method, op) in operations(&doc) {
            let what = format!("{} {path}", method.to_uppercase());
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{what}: no operationId"));
            assert!(ids.insert(id.to_string()), "{what}: operationId {id} used twice");
            assert!(op["summary"].is_string(), "{what}: no summary");

            // Path parameters: declared once each, for exactly the path's templates.
            let templates: BTreeSet<String> =
                path.split('{').skip(1).map(|s| s.split('}').next().unwrap().to_string()).collect();
            let params: Vec<&Value> = doc["paths"][&path]
                .get("parameters")
                .into_iter()
                .chain(op.get("parameters"))
                .flat_map(|p| p.as_array().unwrap())
                .map(|p| resolve(&doc, p))
                .collect();
            let declared: BTreeSet<String> = params
                .iter()
                .filter(|p| p["in"] == "path")
                .inspect(|p| assert_eq!(p["required"], true, "{what}: path parameter {} not required", p["name"]))
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(templates, declared, "{what}: path parameters");

            let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{what}: no responses"));
            // Open311's XML paths exist only to say that XML is not served.
            let refusal = path.ends_with(".xml");
            assert!(refusal || responses.keys().any(|c| c.starts_with('2')), "{what}: no success response");
            let has = |code: &str| responses.contains_key(code);
            let error_schema = |code: &str| {
                let r = resolve(&doc, &responses[code]);
                r["content"]["application/json"]["schema"]["$ref"].as_str().unwrap_or("").to_string()
            };
            let json_body = op["requestBody"]["content"].get("application/json").is_some();
            if path.starts_with("/api/v1/") {
                assert_eq!(op["security"], serde_json::json!([{ "bearer": [] }]), "{what}: bearer token");
                assert!(has("401"), "{what}: no 401");
                for code in responses.keys().filter(|c| !c.starts_with('2')) {
                    assert_eq!(error_schema(code), "#/components/schemas/Error", "{what} {code}: not the Error shape");
                }
                if json_body {
                    for code in ["400", "413", "415"] {
                        assert!(has(code), "{what}: a JSON body can be answered {code}");
                    }
                    assert!(op["requestBody"]["required"] == true, "{what}: body required");
                }
                if path.contains("{id}") {
                    assert!(has("400") && has("404"), "{what}: a bad or unknown event id");
                }
                if method == "post" {
                    assert!(has("507") && has("503") && has("403"), "{what}: a write");
                }
            } else {
                assert!(op.get("security").is_none(), "{what}: needs no token");
            }
            // Open311's errors are the spec's array in JSON; the `.xml` URLs answer in XML.
            if path.starts_with("/open311/") && !path.ends_with(".xml") {
                for code in responses.keys().filter(|c| !c.starts_with('2')) {
                    assert_eq!(error_schema(code), "#/components/schemas/Open311Errors", "{what} {code}");
                }
            }
            if path.starts_with("/open311/") && path.ends_with(".xml") {
                for (code, r) in responses {
                    assert!(r["content"].get("text/xml").is_some(), "{what} {code}: answered in XML");
                }
            }
        }
        assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    }

    fn enum_of(doc: &Value, pointer: &str) -> BTreeSet<String> {
        doc.pointer(pointer)
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("no enum at {pointer}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    fn set<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        names.into_iter().map(str::to_string).collect()
    }

    #[test]
    fn enums_are_the_workflows_own() {
        let doc = doc();
        let s = "/components/schemas";
        assert_eq!(enum_of(&doc, &format!("{s}/Step/enum")), set(Step::ALL.map(Step::as_str)));
        let actions = [
            Action::Dispatch { to: String::new() },
            Action::Start,
            Action::Handle,
            Action::Verify,
            Action::SendBack,
            Action::Archive,
            Action::Evaluate { score: 1 },
            Action::Note,
        ];
        assert_eq!(enum_of(&doc, &format!("{s}/Action/enum")), set(actions.iter().map(Action::name)));
        assert_eq!(enum_of(&doc, &format!("{s}/Tier/enum")), set([Tier::County, Tier::City].map(Tier::as_str)));
        let answers = [Answer::Acknowledge, Answer::Result { outcome: String::new() }];
        assert_eq!(enum_of(&doc, &format!("{s}/AnswerKind/enum")), set(answers.iter().map(Answer::name)));
        let roles = [Role::Operator, Role::GridWorker, Role::Auditor];
        assert_eq!(enum_of(&doc, &format!("{s}/Role/enum")), set(roles.map(Role::as_str)));
        for r in roles {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        let statuses = [EscalationStatus::Pending, EscalationStatus::Acknowledged, EscalationStatus::Answered];
        assert_eq!(
            enum_of(&doc, &format!("{s}/Escalation/properties/status/enum")),
            set(statuses.map(EscalationStatus::as_str))
        );
        let mut history = set(["report", "escalate"]);
        history.extend(set(actions.iter().map(Action::name)));
        history.extend(set(answers.iter().map(Answer::name)));
        assert_eq!(enum_of(&doc, &format!("{s}/HistoryItem/properties/action/enum")), history);

        // Every error code the API can answer with, read from error.rs.
        let source = include_str!("error.rs");
        let codes: BTreeSet<String> = source
            .split("StatusCode::")
            .skip(1)
            .filter_map(|rest| {
                let rest = rest.split_once(',')?.1.trim_start();
                Some(rest.strip_prefix('"')?.split('"').next()?.to_string())
            })
            .collect();
        assert!(codes.len() >= 8, "{codes:?}");
        assert_eq!(enum_of(&doc, &format!("{s}/Error/properties/code/enum")), codes);
    }

    /// `(METHOD, path)` of every `.route(...)` in `source`, each path after `prefix`.
    fn routes_in(source: &str, prefix: &str) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (at, _) in source.match_indices(".route(") {
            let rest = source[at + ".route(".len()..].trim_start();
            let Some(rest) = rest.strip_prefix('"') else { continue };
            let (path, rest) = rest.split_once('"').unwrap();
            // The method router: everything up to the parenthesis that closes `.route(`.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(rest.len(), |(i, _)| i);
            let router = &rest[..end];
            let mut any = false;
            if calls(router, "any") {
                out.insert(("ANY".to_string(), format!("{prefix}{path}")));
                continue;
            }
            for m in METHODS {
                if calls(router, m) {
                    out.insert((m.to_uppercase(), format!("{prefix}{path}")));
                    any = true;
                }
            }
            assert!(any, "no method found for route {prefix}{path}: {router}");
        }
        out
    }

    /// Whether `code` calls a function or method named `name`.
    fn calls(code: &str, name: &str) -> bool {
        code.match_indices(&format!("{name}("))
            .any(|(i, _)| !code[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
    }

    /// A path with each templated segment (`{id}`, `{service_code}.json`, `{*rest}`) as `{}`:
    /// axum cannot route a parameter with a suffix, so a handler may take `{file}` and check
    /// its `.json` itself.
    fn shape(path: &str) -> String {
        path.split('/').map(|seg| if seg.starts_with('{') { "{}" } else { seg }).collect::<Vec<_>>().join("/")
    }

    #[test]
    fn documents_exactly_the_routes_the_node_serves() {
        // The router and every module it merges or nests, read from the source tree.
        let source = |file: &str| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(file);
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        let api = source("api/mod.rs");
        let start = api.find("pub fn router(").expect("api::router");
        let router = &api[start..start + api[start..].find("\n}\n").expect("end of api::router")];
        assert!(!router.contains(".route_service(") && !router.contains(".nest_service("), "update this test");
        let mut served = routes_in(router, "");
        let mut modules = 0;
        for (at, _) in router.match_indices(".merge(").chain(router.match_indices(".nest(")) {
            let call = &router[at..at + router[at..].find(")\n").expect("one call a line")];
            let prefix = call.split('"').nth(1).filter(|_| call.starts_with(".nest(")).unwrap_or("");
            let module = call
                .rsplit_once("::routes(")
                .and_then(|(m, _)| m.rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next())
                .unwrap_or_else(|| panic!("cannot follow {call}: update this test"));
            let text = ["", "/mod"]
                .iter()
                .find_map(|tail| {
                    let path =
                        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("src/api/{module}{tail}.rs"));
                    std::fs::read_to_string(path).ok()
                })
                .unwrap_or_else(|| panic!("no source for api::{module}"));
            served.extend(routes_in(&text, prefix));
            modules += 1;
        }
        assert!(modules >= 2, "{router}");
        served.extend(routes_in(&source("instance.rs"), ""));
        for expected in ["/api/v1/events", "/openapi.json", "/metrics", "/healthz"] {
            assert!(served.iter().any(|(_, p)| p == expected), "the source scan missed {expected}: {served:?}");
        }
        let served: BTreeSet<(String, String)> = served.into_iter().map(|(m, p)| (m, shape(&p))).collect();
        let doc = doc();
        let documented: BTreeSet<(String, String)> =
            operations(&doc).into_iter().map(|(p, m, _)| (m.to_uppercase(), shape(&p))).collect();
        // A route that takes any method (`any(...)`) is documented with at least one.
        let any: BTreeSet<&String> = served.iter().filter(|(m, _)| m == "ANY").map(|(_, p)| p).collect();
        let undocumented: Vec<_> =
            served.iter().filter(|(m, p)| !documented.iter().any(|(n, q)| q == p && (m == "ANY" || m == n))).collect();
        let not_served: Vec<_> =
            documented.iter().filter(|(m, p)| !any.contains(p) && !served.contains(&(m.clone(), p.clone()))).collect();
        assert!(undocumented.is_empty(), "served but not in openapi.json: {undocumented:?}");
        assert!(not_served.is_empty(), "in openapi.json but not served: {not_served:?}");
    }

    #[tokio::test]
    async fn the_served_document_is_the_file_with_this_version() {
        let Json(served) = document().await;
        assert_eq!(served["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(served["paths"], serde_json::from_str::<Value>(SOURCE).unwrap()["paths"]);
    }
}
