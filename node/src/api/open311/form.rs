//! Open311 parameters: `application/x-www-form-urlencoded` pairs from a POST body and the query
//! string, decoded strictly (a bad percent-escape or invalid UTF-8 is a 400, never a silent
//! replacement), with the checks every endpoint needs: no unknown parameter (a typo such as
//! `lon` for `long` must not silently drop a location), no single-valued parameter twice.

use super::Open311Error;

/// Longest parameter name or value quoted back in an error description.
const QUOTE_MAX: usize = 64;

/// `s` shortened for an error description.
pub fn quote(s: &str) -> String {
    if s.chars().count() <= QUOTE_MAX {
        format!("{s:?}")
    } else {
        format!("{:?}…", s.chars().take(QUOTE_MAX).collect::<String>())
    }
}

/// The decoded `name=value` pairs of a request, in order.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Add the pairs of `raw` (urlencoded); `from` names where they came from in errors.
    pub fn extend_from(&mut self, raw: &[u8], from: &str) -> Result<(), Open311Error> {
        for part in raw.split(|&b| b == b'&') {
            if part.is_empty() {
                continue;
            }
            let (name, value) = match part.iter().position(|&b| b == b'=') {
                Some(i) => (&part[..i], &part[i + 1..]),
                None => (part, &b""[..]),
            };
            let name = decode(name).map_err(|why| Open311Error::bad_request(format!("{from}: {why}")))?;
            let value = decode(value)
                .map_err(|why| Open311Error::bad_request(format!("{from}: parameter {}: {why}", quote(&name))))?;
            self.pairs.push((name, value));
        }
        Ok(())
    }

    /// Refuse any parameter not in `known` (and, if `attributes`, not `attribute[code]`).
    pub fn only(&self, known: &[&str], attributes: bool) -> Result<(), Open311Error> {
        for (name, _) in &self.pairs {
            if known.contains(&name.as_str()) || (attributes && attribute_code(name).is_some()) {
                continue;
            }
            let mut takes = known.join(", ");
            if attributes {
                takes.push_str(", attribute[CODE]");
            }
            return Err(Open311Error::bad_request(format!(
                "unknown parameter {}; this call takes: {takes}",
                quote(name)
            )));
        }
        Ok(())
    }

    /// The value of a single-valued parameter; empty values count as not given (HTML forms
    /// send every field), and giving one twice is an error rather than a guess.
    pub fn one(&self, name: &str) -> Result<Option<&str>, Open311Error> {
        let mut found = None;
        for (n, v) in &self.pairs {
            if n != name || v.trim().is_empty() {
                continue;
            }
            if found.is_some() {
                return Err(Open311Error::bad_request(format!("{name} is given more than once")));
            }
            found = Some(v.as_str());
        }
        Ok(found)
    }

    /// The comma-separated values of a list parameter, however many times it is given
    /// (`status=open,closed` or `status=open&status=closed`); empty items are left out.
    pub fn list(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// Whether a parameter is given with a non-empty value.
    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, v)| n == name && !v.trim().is_empty())
    }

    /// `attribute[code]=value` and `attribute[code][]=value` (multivaluelist) pairs, in order;
    /// empty values are left out.
    pub fn attributes(&self) -> Vec<(String, String)> {
        self.pairs
            .iter()
            .filter_map(|(n, v)| Some((attribute_code(n)?.to_string(), v.clone())))
            .filter(|(_, v)| !v.trim().is_empty())
            .collect()
    }
}

/// `code` of `attribute[code]` or `attribute[code][]`.
fn attribute_code(name: &str) -> Option<&str> {
    let inner = name.strip_prefix("attribute[")?;
    let inner = inner.strip_suffix("][]").or_else(|| inner.strip_suffix(']'))?;
    (!inner.is_empty() && !inner.contains(['[', ']'])).then_some(inner)
}

/// Decode one urlencoded component: `+` is a space, `%XX` a byte, and the result UTF-8.
fn decode(raw: &[u8]) -> Result<String, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or_else(|| {
                    format!("bad percent-escape {:?}", String::from_utf8_lossy(&raw[i..raw.len().min(i + 3)]))
                })?;
                out.push(byte);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "not UTF-8 (GeoReport v2 requires UTF-8 everywhere)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(raw: &str) -> Params {
        let mut p = Params::default();
        p.extend_from(raw.as_bytes(), "body").unwrap();
        p
    }

    #[test]
    fn decodes_forms() {
        let p = params("description=Fallen+tree%2C+blocking%20road&lat=36.06&long=&attribute[size]=large&attribute[kinds][]=a&attribute[kinds][]=b&x");
        assert_eq!(p.one("description").unwrap(), Some("Fallen tree, blocking road"));
        assert_eq!(p.one("long").unwrap(), None, "empty is not given");
        assert_eq!(p.one("x").unwrap(), None);
        assert_eq!(
            p.attributes(),
            vec![("size".into(), "large".into()), ("kinds".into(), "a".into()), ("kinds".into(), "b".into())]
        );
        assert!(p.only(&["description", "lat", "long", "x"], true).is_ok());
        assert!(p.only(&["description", "lat", "long", "x"], false).unwrap_err().description.contains("attribute"));
        assert_eq!(params("d=%E6%B5%B7").one("d").unwrap(), Some("海"));
        let p = params("status=open,+closed&status=&status=closed");
        assert_eq!(p.list("status"), ["open", "closed", "closed"]);
        assert!(p.has("status") && !params("status=").has("status"));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let mut p = Params::default();
        assert!(p.extend_from(b"a=%zz", "body").unwrap_err().description.contains("percent-escape"));
        assert!(p.extend_from(b"a=%e6", "body").unwrap_err().description.contains("UTF-8"));
        assert!(p.extend_from(b"a=%4", "body").is_err());
        let p = params("lat=1&lat=2");
        assert!(p.one("lat").unwrap_err().description.contains("more than once"));
        assert!(params("lon=1").only(&["lat", "long"], false).unwrap_err().description.contains("\"lon\""));
        assert_eq!(attribute_code("attribute[]"), None);
        assert_eq!(attribute_code("attribute[a][b]"), None);
    }
}
