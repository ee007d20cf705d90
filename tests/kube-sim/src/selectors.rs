//! Label and field selectors as list/watch requests carry them.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector (`a=b,c!=d,e in (f,g),h,!i`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Req>);

fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn valid_key(k: &str) -> bool {
    let name = k.rsplit('/').next().unwrap_or(k);
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && k.split('/').count() <= 2
}

impl LabelSelector {
    /// Parses like the API server; the error text is what it puts in the 400 Status.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector(reqs));
        }
        for raw in split_top(s) {
            let r = raw.trim();
            let bad = || format!("unable to parse requirement: found '{r}', expected: identifier");
            let key = |k: &str| -> Result<String, String> {
                let k = k.trim();
                if valid_key(k) {
                    Ok(k.to_string())
                } else {
                    Err(format!(
                        "unable to parse requirement: <nil>: Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                    ))
                }
            };
            let set = |rest: &str| -> Result<Vec<String>, String> {
                let inner =
                    rest.trim().strip_prefix('(').and_then(|x| x.strip_suffix(')')).ok_or_else(|| {
                        format!("unable to parse requirement: found '{}', expected: '('", rest.trim())
                    })?;
                Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
            };
            if let Some(k) = r.strip_prefix('!') {
                reqs.push(Req::NotExists(key(k)?));
            } else if let Some((k, v)) = r.split_once("!=") {
                reqs.push(Req::NotEq(key(k)?, v.trim().into()));
            } else if let Some((k, v)) = r.split_once("==").or_else(|| r.split_once('=')) {
                reqs.push(Req::Eq(key(k)?, v.trim().into()));
            } else if let Some((k, rest)) = r.split_once(" notin ") {
                reqs.push(Req::NotIn(key(k)?, set(rest)?));
            } else if let Some((k, rest)) = r.split_once(" in ") {
                reqs.push(Req::In(key(k)?, set(rest)?));
            } else if r.contains(char::is_whitespace) || r.is_empty() {
                return Err(bad());
            } else {
                reqs.push(Req::Exists(key(r)?));
            }
        }
        Ok(LabelSelector(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        self.matches_with(|k| labels.get(k).and_then(Value::as_str))
    }

    /// Matches labels looked up by `get` (e.g. from a stored object's index).
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v),
            Req::NotEq(k, v) => get(k) != Some(v),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A field selector over the fields the API server supports for the kinds we serve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

const FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "status.phase",
    "involvedObject.name",
    "involvedObject.kind",
];

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for raw in s.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let (k, neg, v) = if let Some((k, v)) = raw.split_once("!=") {
                (k, true, v)
            } else if let Some((k, v)) = raw.split_once("==").or_else(|| raw.split_once('=')) {
                (k, false, v)
            } else {
                return Err(format!("invalid selector: '{s}'; can't understand '{raw}'"));
            };
            if !FIELDS.contains(&k) {
                return Err(format!("field label not supported: {k}"));
            }
            out.push((k.to_string(), neg, v.to_string()));
        }
        Ok(FieldSelector(out))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.matches_with(|k| obj.pointer(&format!("/{}", k.replace('.', "/"))).and_then(Value::as_str))
    }

    /// Matches fields looked up by `get` (one of the supported field paths).
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|(k, neg, v)| (get(k).unwrap_or("") == v) != *neg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let o = json!({"metadata": {"labels": {"app": "web", "env": "prod"}}});
        for (s, want) in [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("env in (prod,dev)", true),
            ("env notin (prod)", false),
            ("app", true),
            ("!app", false),
            ("!tier", true),
            ("app=web,env in (prod)", true),
        ] {
            assert_eq!(LabelSelector::parse(s).unwrap().matches(&o), want, "{s}");
        }
        assert!(LabelSelector::parse("a b").is_err());
        assert!(LabelSelector::parse("env in prod").is_err());
    }

    #[test]
    fn field_selectors() {
        let o = json!({"metadata": {"name": "a", "namespace": "x"}, "status": {"phase": "Running"}});
        assert!(FieldSelector::parse("metadata.name=a,status.phase!=Pending").unwrap().matches(&o));
        assert!(!FieldSelector::parse("metadata.namespace=y").unwrap().matches(&o));
        assert_eq!(FieldSelector::parse("spec.foo=1").unwrap_err(), "field label not supported: spec.foo");
    }
}
