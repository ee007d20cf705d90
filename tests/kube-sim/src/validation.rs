//! The apimachinery validation kube-sim models (names, label keys and values, qualified
//! names), with the real messages.

pub const DNS_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
pub const DNS_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
pub const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
pub const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn label_chars(b: &[u8]) -> bool {
    b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && label_chars(b)
}

pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && !s.is_empty() && s.split('.').all(is_dns_label)
}

/// `IsDNS1123Label`'s messages.
pub fn dns_label_errors(s: &str) -> Vec<String> {
    let mut e = Vec::new();
    if s.len() > 63 {
        e.push("must be no more than 63 characters".into());
    }
    let b = s.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() || !label_chars(b) {
        e.push(DNS_LABEL_MSG.into());
    }
    e
}

/// `IsDNS1035Label`'s messages (Service names).
pub fn dns1035_label_errors(s: &str) -> Vec<String> {
    let mut e = Vec::new();
    if s.len() > 63 {
        e.push("must be no more than 63 characters".into());
    }
    let b = s.as_bytes();
    if b.is_empty() || !b[0].is_ascii_lowercase() || !b[b.len() - 1].is_ascii_alphanumeric() || !label_chars(b) {
        e.push(DNS1035_LABEL_MSG.into());
    }
    e
}

/// `IsDNS1123Subdomain`'s messages.
pub fn dns_subdomain_errors(s: &str) -> Vec<String> {
    let mut e = Vec::new();
    if s.len() > 253 {
        e.push("must be no more than 253 characters".into());
    }
    if s.is_empty() || !s.split('.').all(|l| !l.is_empty() && is_dns_label(&l[..l.len().min(63)]) && l.len() <= 63) {
        e.push(DNS_SUBDOMAIN_MSG.into());
    }
    e
}

/// `ValidatePathSegmentName` (RBAC object names).
pub fn path_segment_errors(s: &str) -> Vec<String> {
    let mut e = Vec::new();
    if s == "." || s == ".." {
        e.push(format!("may not be '{s}'"));
    }
    for c in ["/", "%"] {
        if s.contains(c) {
            e.push(format!("may not contain '{c}'"));
        }
    }
    e
}

/// `IsQualifiedName`: an optional DNS-subdomain prefix and `/`, then a name part (label keys,
/// annotation keys, Event reportingController).
pub fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [n] => *n,
        [prefix, n] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(dns_subdomain_errors(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            *n
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                &NAME_PART_MSG["name part ".len()..]
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 bytes".into());
    }
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if !ok {
        errs.push(NAME_PART_MSG.into());
    }
    errs
}

/// `IsValidLabelValue`.
pub fn label_value_errors(v: &str) -> Vec<String> {
    let mut e = Vec::new();
    if v.len() > 63 {
        e.push("must be no more than 63 bytes".into());
    }
    let b = v.as_bytes();
    let ok = b.is_empty()
        || (b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')));
    if !ok {
        e.push(LABEL_VALUE_MSG.into());
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_like_03_patch_errors() {
        assert_eq!(label_value_errors(&"x".repeat(64)), ["must be no more than 63 bytes"]);
        assert_eq!(label_value_errors("not a valid value!"), [LABEL_VALUE_MSG]);
        assert!(label_value_errors("").is_empty());
        assert_eq!(qualified_name_errors("-bad-key-"), [NAME_PART_MSG]);
        assert!(qualified_name_errors("meshkeeper.io/recorder").is_empty());
        assert_eq!(qualified_name_errors(""), ["name part must be non-empty", NAME_PART_MSG]);
        assert_eq!(qualified_name_errors("Bad_Prefix/x"), [format!("prefix part {DNS_SUBDOMAIN_MSG}")]);
        assert_eq!(dns_subdomain_errors("Bad_Name"), [DNS_SUBDOMAIN_MSG]);
        assert!(dns_subdomain_errors("kube-root-ca.crt").is_empty());
        assert_eq!(dns_label_errors("a.b"), [DNS_LABEL_MSG]);
        assert_eq!(dns1035_label_errors("1abc"), [DNS1035_LABEL_MSG]);
        assert_eq!(path_segment_errors("system:a/b"), ["may not contain '/'"]);
    }
}
