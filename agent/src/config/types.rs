//! Newtypes that parse at the edge, so an invalid value never travels inside the agent.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A namespace-name glob: `*` matches any run of characters, `?` exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Glob(String);

impl Glob {
    /// Whether `name` matches this glob (the whole name, not a substring).
    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.0.as_bytes(), name.as_bytes())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Iterative glob match with single-star backtracking: linear in practice, no recursion.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

impl TryFrom<String> for Glob {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.is_empty() {
            return Err("an empty pattern matches no namespace".into());
        }
        if let Some(c) =
            s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '*' | '?')))
        {
            return Err(format!(
                "{s:?} is not a namespace glob: {c:?} is not allowed (use a-z, 0-9, '-', '*' and '?')"
            ));
        }
        Ok(Glob(s))
    }
}

impl From<Glob> for String {
    fn from(g: Glob) -> String {
        g.0
    }
}

/// A label `key=value`, with key and value checked as Kubernetes checks them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LabelPair {
    pub key: String,
    pub value: String,
}

impl LabelPair {
    pub fn new(key: &str, value: &str) -> Self {
        LabelPair { key: key.to_string(), value: value.to_string() }
    }
}

impl fmt::Display for LabelPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

impl FromStr for LabelPair {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((key, value)) = s.split_once('=') else {
            return Err(format!("{s:?} is not a label: expected key=value, e.g. istio-injection=enabled"));
        };
        validate_label_key(key).map_err(|e| format!("{s:?}: label key {e}"))?;
        validate_label_value(value).map_err(|e| format!("{s:?}: label value {e}"))?;
        Ok(LabelPair::new(key, value))
    }
}

/// `TryFrom<String>` by `FromStr` and `From<T> for String` by `Display`: what
/// `#[serde(try_from = "String", into = "String")]` needs of a type that parses at the edge.
macro_rules! string_conversions {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = String;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.to_string()
            }
        }
    )*};
}

string_conversions!(LabelPair, VersionRange);

/// Text that must be written as a string in YAML: a version. Unquoted, YAML reads `1.10` as the
/// number 1.1 (and `1.30` as 1.3) before meshkeeper sees it, so a number is refused with the
/// fix instead of silently becoming another version.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct Quoted(pub String);

impl<'de> Deserialize<'de> for Quoted {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Quoted;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quoted string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quoted, E> {
                Ok(Quoted(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quoted, E> {
                Err(E::custom(format!(
                    "the number {v} (YAML reads an unquoted 1.10 as 1.1): write the version quoted, e.g. \"1.10\""
                )))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quoted, E> {
                Err(E::custom(format!("the number {v}: write versions quoted (\"{v}\")")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quoted, E> {
                Err(E::custom(format!("the number {v}: write versions quoted (\"{v}\")")))
            }
        }
        d.deserialize_any(V)
    }
}

impl TryFrom<Quoted> for VersionRange {
    type Error = String;
    fn try_from(q: Quoted) -> Result<Self, Self::Error> {
        q.0.parse()
    }
}

/// A range of Kubernetes minor versions: `1.13-1.15` (inclusive), `1.24+` (no upper bound)
/// or `1.16` (that one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Quoted", into = "String")]
pub struct VersionRange {
    /// (major, minor) of the oldest supported version.
    pub min: (u32, u32),
    /// (major, minor) of the newest; None: no upper bound.
    pub max: Option<(u32, u32)>,
}

impl VersionRange {
    pub fn contains(&self, v: (u32, u32)) -> bool {
        v >= self.min && self.max.is_none_or(|max| v <= max)
    }
}

fn parse_minor(s: &str) -> Option<(u32, u32)> {
    let (major, minor) = s.trim().strip_prefix('v').unwrap_or(s.trim()).split_once('.')?;
    let digits = |x: &str| !x.is_empty() && x.len() <= 4 && x.bytes().all(|b| b.is_ascii_digit());
    (digits(major) && digits(minor)).then(|| Some((major.parse().ok()?, minor.parse().ok()?)))?
}

impl FromStr for VersionRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a range of Kubernetes versions (e.g. \"1.13-1.15\", \"1.24+\" or \"1.16\")");
        let t = s.trim();
        let (min, max) = if let Some(min) = t.strip_suffix('+') {
            (parse_minor(min).ok_or_else(bad)?, None)
        } else if let Some((a, b)) = t.split_once('-') {
            (parse_minor(a).ok_or_else(bad)?, Some(parse_minor(b).ok_or_else(bad)?))
        } else {
            let v = parse_minor(t).ok_or_else(bad)?;
            (v, Some(v))
        };
        if max.is_some_and(|max| max < min) {
            return Err(format!("{s:?}: the first version is newer than the last"));
        }
        Ok(VersionRange { min, max })
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b) = self.min;
        match self.max {
            None => write!(f, "{a}.{b}+"),
            Some(max) if max == self.min => write!(f, "{a}.{b}"),
            Some((c, d)) => write!(f, "{a}.{b}-{c}.{d}"),
        }
    }
}

fn is_label_name(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// Checks a label key as the API server does: optional DNS-subdomain prefix, a name of at most 63 characters.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && !is_dns_subdomain(p)
    {
        return Err(format!("{key:?} has an invalid prefix {p:?} (must be a DNS subdomain)"));
    }
    if !is_label_name(name, 63) {
        return Err(format!(
            "{key:?} is invalid (at most 63 characters: alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric)"
        ));
    }
    Ok(())
}

/// Checks a label value as the API server does (empty, or at most 63 characters of the label alphabet).
pub fn validate_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_name(value, 63) {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is invalid (at most 63 characters: alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric)"
        ))
    }
}

/// Whether `s` is a valid Kubernetes object name (DNS-1123 label, as namespaces and services need).
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// A set-based label selector (`a=b,c!=d,e in (f,g),h,!i`), parsed at the edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LabelSelector {
    text: String,
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Default for LabelSelector {
    /// The empty selector, which matches everything.
    fn default() -> Self {
        LabelSelector { text: String::new(), requirements: Vec::new() }
    }
}

impl LabelSelector {
    /// Whether a set of labels satisfies every requirement.
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Eq(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEq(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_requirement(raw: &str) -> Result<Requirement, String> {
    let r = raw.trim();
    let key_ok = |k: &str| validate_label_key(k).map(|_| k.to_string());
    let val_ok = |v: &str| validate_label_value(v.trim()).map(|_| v.trim().to_string());
    let set = |rest: &str| -> Result<Vec<String>, String> {
        let inner = rest
            .trim()
            .strip_prefix('(')
            .and_then(|x| x.strip_suffix(')'))
            .ok_or_else(|| format!("{r:?}: expected a parenthesised set of values, e.g. (a,b)"))?;
        inner.split(',').map(val_ok).collect()
    };
    if let Some(k) = r.strip_prefix('!') {
        return Ok(Requirement::NotExists(key_ok(k.trim())?));
    }
    if let Some((k, v)) = r.split_once("!=") {
        return Ok(Requirement::NotEq(key_ok(k.trim())?, val_ok(v)?));
    }
    if let Some((k, v)) = r.split_once("==").or_else(|| r.split_once('=')) {
        return Ok(Requirement::Eq(key_ok(k.trim())?, val_ok(v)?));
    }
    let mut words = r.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default();
    let rest = words.next().unwrap_or_default().trim();
    if rest.is_empty() {
        return Ok(Requirement::Exists(key_ok(key)?));
    }
    if let Some(vals) = rest.strip_prefix("notin") {
        return Ok(Requirement::NotIn(key_ok(key)?, set(vals)?));
    }
    if let Some(vals) = rest.strip_prefix("in") {
        return Ok(Requirement::In(key_ok(key)?, set(vals)?));
    }
    Err(format!("{r:?} is not a selector requirement (use k=v, k!=v, k in (a,b), k notin (a,b), k or !k)"))
}

impl TryFrom<String> for LabelSelector {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.trim().is_empty() {
            return Ok(LabelSelector { text, requirements: Vec::new() });
        }
        let requirements = split_top_level(&text).into_iter().map(parse_requirement).collect::<Result<Vec<_>, _>>()?;
        Ok(LabelSelector { text, requirements })
    }
}

impl From<LabelSelector> for String {
    fn from(s: LabelSelector) -> String {
        s.text
    }
}

/// A day of the week, as a maintenance window names it (`mon` .. `sun`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    pub const ALL: [Weekday; 7] =
        [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

    /// The UTC weekday of a unix time (1970-01-01 was a Thursday).
    pub fn of_unix(t: i64) -> Weekday {
        Weekday::ALL[(t.div_euclid(86_400) + 3).rem_euclid(7) as usize]
    }
}

/// A time of day `HH:MM` (UTC), in minutes since midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeOfDay(pub u16);

impl TryFrom<String> for TimeOfDay {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a time of day HH:MM (00:00-24:00, UTC)");
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        // Two digits each: u16's parser alone would also take a sign ("+1:00").
        let two_digits = |x: &str| x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(h) || !two_digits(m) {
            return Err(bad());
        }
        let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if m > 59 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(TimeOfDay(h * 60 + m))
    }
}

impl From<TimeOfDay> for String {
    fn from(t: TimeOfDay) -> String {
        format!("{:02}:{:02}", t.0 / 60, t.0 % 60)
    }
}

/// A recurring maintenance window: on the given days (all when empty), from `start` to `end`
/// UTC; an `end` before `start` runs past midnight into the next day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    #[serde(default)]
    pub days: Vec<Weekday>,
    pub start: TimeOfDay,
    pub end: TimeOfDay,
}

impl MaintenanceWindow {
    /// Whether unix time `t` falls inside the window.
    pub fn contains(&self, t: i64) -> bool {
        let minute = (t.rem_euclid(86_400) / 60) as u16;
        let day_ok = |d: Weekday| self.days.is_empty() || self.days.contains(&d);
        let (start, end) = (self.start.0, self.end.0);
        if start < end {
            day_ok(Weekday::of_unix(t)) && minute >= start && minute < end
        } else {
            // Past midnight: the evening part belongs to today, the morning part to yesterday's window.
            (minute >= start && day_ok(Weekday::of_unix(t))) || (minute < end && day_ok(Weekday::of_unix(t - 86_400)))
        }
    }

    /// When the window opens next at or after `t` (unix seconds), within a week.
    pub fn next_open(&self, t: i64) -> Option<i64> {
        (0..=7 * 24 * 60).map(|m| t + m * 60).find(|x| self.contains(*x)).map(|x| x - x.rem_euclid(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// 2026-11-30 is a Monday.
    const MON: i64 = 1_795_996_800;

    fn window(days: &[Weekday], start: &str, end: &str) -> MaintenanceWindow {
        MaintenanceWindow {
            days: days.to_vec(),
            start: TimeOfDay::try_from(start.to_string()).unwrap(),
            end: TimeOfDay::try_from(end.to_string()).unwrap(),
        }
    }

    #[test]
    fn maintenance_windows_follow_days_and_cross_midnight() {
        assert_eq!(Weekday::of_unix(MON), Weekday::Mon);
        assert_eq!(Weekday::of_unix(MON - 1), Weekday::Sun);
        let h = |d: i64, hh: i64, mm: i64| MON + d * 86_400 + hh * 3600 + mm * 60;
        let cases = [
            (window(&[], "02:00", "06:00"), h(0, 2, 0), true),
            (window(&[], "02:00", "06:00"), h(0, 6, 0), false),
            (window(&[], "02:00", "06:00"), h(3, 1, 59), false),
            (window(&[Weekday::Sat, Weekday::Sun], "00:00", "24:00"), h(5, 12, 0), true),
            (window(&[Weekday::Sat, Weekday::Sun], "00:00", "24:00"), h(4, 23, 59), false),
            // Friday 22:00 to Saturday 04:00.
            (window(&[Weekday::Fri], "22:00", "04:00"), h(4, 23, 0), true),
            (window(&[Weekday::Fri], "22:00", "04:00"), h(5, 3, 59), true),
            (window(&[Weekday::Fri], "22:00", "04:00"), h(5, 4, 0), false),
            (window(&[Weekday::Fri], "22:00", "04:00"), h(5, 23, 0), false),
            (window(&[Weekday::Fri], "22:00", "04:00"), h(4, 3, 0), false),
        ];
        for (i, (w, t, want)) in cases.iter().enumerate() {
            assert_eq!(w.contains(*t), *want, "case {i}: {w:?} at {t}");
        }
        let w = window(&[Weekday::Sat], "02:00", "06:00");
        assert_eq!(w.next_open(h(0, 10, 0)), Some(h(5, 2, 0)));
        assert_eq!(w.next_open(h(5, 3, 0)), Some(h(5, 3, 0)), "already open");
        for bad in ["2:00", "25:00", "12:60", "24:01", "noon", "12-00"] {
            assert!(TimeOfDay::try_from(bad.to_string()).is_err(), "{bad}");
        }
        assert_eq!(String::from(TimeOfDay::try_from("07:05".to_string()).unwrap()), "07:05");
    }

    #[test]
    fn times_of_day_are_two_digits_each() {
        // u16's parser takes a sign: "+1:00" must not pass as 01:00.
        for bad in ["+1:00", "00:+0", "+0:+5", "-0:00", "1 :00"] {
            assert!(TimeOfDay::try_from(bad.to_string()).is_err(), "{bad} should be rejected");
        }
        assert_eq!(TimeOfDay::try_from("01:05".to_string()), Ok(TimeOfDay(65)));
    }

    #[test]
    fn globs_match_whole_names() {
        let cases = [
            ("*", "anything", true),
            ("team-*", "team-a", true),
            ("team-*", "my-team-a", false),
            ("*-prod", "shop-prod", true),
            ("*-prod", "shop-prod-2", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("kube-system", "kube-system", true),
            ("kube-*-lease", "kube-node-lease", true),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b", "xxaxxbxx", false),
        ];
        for (pattern, name, want) in cases {
            let g = Glob::try_from(pattern.to_string()).unwrap();
            assert_eq!(g.matches(name), want, "{pattern} vs {name}");
        }
    }

    #[test]
    fn label_pairs_parse_and_reject() {
        assert_eq!("istio.io/rev=asm-1234".parse::<LabelPair>().unwrap(), LabelPair::new("istio.io/rev", "asm-1234"));
        assert_eq!("a=".parse::<LabelPair>().unwrap(), LabelPair::new("a", ""));
        assert!("noequals".parse::<LabelPair>().unwrap_err().contains("expected key=value"));
        assert!("-a=b".parse::<LabelPair>().unwrap_err().contains("label key"));
        assert!("a=b c".parse::<LabelPair>().unwrap_err().contains("label value"));
        assert!("Bad_Prefix/a=b".parse::<LabelPair>().unwrap_err().contains("invalid prefix"));
    }

    #[test]
    fn selectors_cover_every_operator() {
        let labels: BTreeMap<&str, &str> = [("env", "prod"), ("team", "a"), ("mesh", "")].into();
        let get = |k: &str| labels.get(k).copied();
        let cases = [
            ("", true),
            ("env=prod", true),
            ("env==prod", true),
            ("env!=prod", false),
            ("env in (prod,staging)", true),
            ("env notin (prod)", false),
            ("missing notin (x)", true),
            ("team", true),
            ("!team", false),
            ("!missing", true),
            ("env=prod,team in (a, b),!missing", true),
            ("mesh=", true),
        ];
        for (text, want) in cases {
            let s = LabelSelector::try_from(text.to_string()).unwrap();
            assert_eq!(s.matches(get), want, "{text}");
        }
        for bad in ["env in prod", "=x", "a b c", "env in (bad value)"] {
            assert!(LabelSelector::try_from(bad.to_string()).is_err(), "{bad} should fail");
        }
    }
}
