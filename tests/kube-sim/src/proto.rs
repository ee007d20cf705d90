//! Just enough Kubernetes protobuf to read what kubectl sends as protobuf (typed clients:
//! `kubectl create namespace|configmap|serviceaccount|deployment`, `kubectl auth can-i`): the `k8s\0`
//! envelope (runtime.Unknown) and a few message types, decoded to JSON by field-number tables.
//! Any other kind is answered 415 by the caller. Responses are always JSON.

use serde_json::{Map, Value, json};

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bool,
    StrList,
    StrMap,
    /// int32/int64 (varint)
    Int,
    Msg(&'static [F]),
    MsgList(&'static [F]),
}

type F = (u64, &'static str, Ty);

const META: &[F] = &[
    (1, "name", Ty::Str),
    (2, "generateName", Ty::Str),
    (3, "namespace", Ty::Str),
    (11, "labels", Ty::StrMap),
    (12, "annotations", Ty::StrMap),
    (14, "finalizers", Ty::StrList),
];
const NAMESPACE: &[F] = &[(1, "metadata", Ty::Msg(META)), (2, "spec", Ty::Msg(&[(1, "finalizers", Ty::StrList)]))];
const CONFIGMAP: &[F] = &[(1, "metadata", Ty::Msg(META)), (2, "data", Ty::StrMap), (4, "immutable", Ty::Bool)];
const SERVICEACCOUNT: &[F] = &[(1, "metadata", Ty::Msg(META)), (3, "automountServiceAccountToken", Ty::Bool)];
const RESOURCE_ATTRS: &[F] = &[
    (1, "namespace", Ty::Str),
    (2, "verb", Ty::Str),
    (3, "group", Ty::Str),
    (4, "version", Ty::Str),
    (5, "resource", Ty::Str),
    (6, "subresource", Ty::Str),
    (7, "name", Ty::Str),
];
const SSAR: &[F] = &[
    (1, "metadata", Ty::Msg(META)),
    (
        2,
        "spec",
        Ty::Msg(&[
            (1, "resourceAttributes", Ty::Msg(RESOURCE_ATTRS)),
            (2, "nonResourceAttributes", Ty::Msg(&[(1, "path", Ty::Str), (2, "verb", Ty::Str)])),
        ]),
    ),
];
const LABEL_SELECTOR: &[F] = &[(1, "matchLabels", Ty::StrMap)];
const CONTAINER: &[F] = &[
    (1, "name", Ty::Str),
    (2, "image", Ty::Str),
    (3, "command", Ty::StrList),
    (4, "args", Ty::StrList),
    (5, "workingDir", Ty::Str),
    (
        6,
        "ports",
        Ty::MsgList(&[
            (1, "name", Ty::Str),
            (2, "hostPort", Ty::Int),
            (3, "containerPort", Ty::Int),
            (4, "protocol", Ty::Str),
        ]),
    ),
    (7, "env", Ty::MsgList(&[(1, "name", Ty::Str), (2, "value", Ty::Str)])),
    (14, "imagePullPolicy", Ty::Str),
];
const POD_TEMPLATE: &[F] = &[
    (1, "metadata", Ty::Msg(META)),
    (
        2,
        "spec",
        Ty::Msg(&[
            (2, "containers", Ty::MsgList(CONTAINER)),
            (3, "restartPolicy", Ty::Str),
            (8, "serviceAccountName", Ty::Str),
            (20, "initContainers", Ty::MsgList(CONTAINER)),
        ]),
    ),
];
const DEPLOYMENT: &[F] = &[
    (1, "metadata", Ty::Msg(META)),
    (
        2,
        "spec",
        Ty::Msg(&[
            (1, "replicas", Ty::Int),
            (2, "selector", Ty::Msg(LABEL_SELECTOR)),
            (3, "template", Ty::Msg(POD_TEMPLATE)),
            (4, "strategy", Ty::Msg(&[(1, "type", Ty::Str)])),
        ]),
    ),
];
const SSRR: &[F] = &[(1, "metadata", Ty::Msg(META)), (2, "spec", Ty::Msg(&[(1, "namespace", Ty::Str)]))];

/// The JSON form of a protobuf-encoded request body; Err names why it cannot be read.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body.strip_prefix(b"k8s\0").ok_or("missing the k8s protobuf envelope")?;
    let unknown = fields(rest)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (n, v) in &unknown {
        match (n, v) {
            (1, Wire::Bytes(b)) => {
                for (n, v) in fields(b)? {
                    if let Wire::Bytes(s) = v {
                        let s = String::from_utf8_lossy(s).into_owned();
                        if n == 1 {
                            api_version = s;
                        } else if n == 2 {
                            kind = s;
                        }
                    }
                }
            }
            (2, Wire::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    let schema = match kind.as_str() {
        "Namespace" => NAMESPACE,
        "ConfigMap" => CONFIGMAP,
        "ServiceAccount" => SERVICEACCOUNT,
        "SelfSubjectAccessReview" => SSAR,
        "SelfSubjectRulesReview" => SSRR,
        "Deployment" => DEPLOYMENT,
        other => return Err(format!("kube-sim cannot decode protobuf for kind {other:?}")),
    };
    let mut v = message(raw, schema)?;
    v["apiVersion"] = json!(api_version);
    v["kind"] = json!(kind);
    Ok(v)
}

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(b: &[u8], i: &mut usize) -> Result<u64, String> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i).ok_or("truncated varint")?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

fn fields(b: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i)?;
        let (n, wt) = (key >> 3, key & 7);
        let w = match wt {
            0 => Wire::Varint(varint(b, &mut i)?),
            2 => {
                let len = usize::try_from(varint(b, &mut i)?).map_err(|_| "length too large")?;
                let end = i.checked_add(len).filter(|e| *e <= b.len()).ok_or("truncated field")?;
                let s = &b[i..end];
                i = end;
                Wire::Bytes(s)
            }
            1 => {
                i = i.checked_add(8).filter(|e| *e <= b.len()).ok_or("truncated fixed64")?;
                Wire::Fixed
            }
            5 => {
                i = i.checked_add(4).filter(|e| *e <= b.len()).ok_or("truncated fixed32")?;
                Wire::Fixed
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        out.push((n, w));
    }
    Ok(out)
}

fn message(b: &[u8], schema: &[F]) -> Result<Value, String> {
    let mut m = Map::new();
    for (n, w) in fields(b)? {
        let Some((_, name, ty)) = schema.iter().find(|f| f.0 == n) else { continue };
        let name = (*name).to_string();
        match (ty, w) {
            // Kubernetes' protobuf always writes non-pointer strings and ints; their JSON omits
            // them when empty, so drop "" and 0 (`replicas` is a pointer: 0 is kept).
            (Ty::Str, Wire::Bytes(s)) => {
                if !s.is_empty() {
                    m.insert(name, json!(String::from_utf8_lossy(s)));
                }
            }
            (Ty::Bool, Wire::Varint(v)) => {
                m.insert(name, json!(v != 0));
            }
            (Ty::StrList, Wire::Bytes(s)) => {
                let e = m.entry(name).or_insert_with(|| json!([]));
                if let Some(a) = e.as_array_mut() {
                    a.push(json!(String::from_utf8_lossy(s)));
                }
            }
            (Ty::StrMap, Wire::Bytes(s)) => {
                let (mut k, mut v) = (String::new(), String::new());
                for (n, w) in fields(s)? {
                    if let Wire::Bytes(x) = w {
                        let x = String::from_utf8_lossy(x).into_owned();
                        if n == 1 {
                            k = x;
                        } else if n == 2 {
                            v = x;
                        }
                    }
                }
                let e = m.entry(name).or_insert_with(|| json!({}));
                if let Some(o) = e.as_object_mut() {
                    o.insert(k, json!(v));
                }
            }
            (Ty::Msg(sub), Wire::Bytes(s)) => {
                m.insert(name, message(s, sub)?);
            }
            (Ty::MsgList(sub), Wire::Bytes(s)) => {
                let item = message(s, sub)?;
                let e = m.entry(name).or_insert_with(|| json!([]));
                if let Some(a) = e.as_array_mut() {
                    a.push(item);
                }
            }
            (Ty::Int, Wire::Varint(v)) => {
                // int32 negatives are sign-extended to 64 bits on the wire.
                if v != 0 || name == "replicas" {
                    m.insert(name, json!(v as i64));
                }
            }
            _ => return Err(format!("field {n} has an unexpected wire type")),
        }
    }
    Ok(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(n: u64, b: &[u8]) -> Vec<u8> {
        let mut v = vec![(n << 3 | 2) as u8, b.len() as u8];
        v.extend_from_slice(b);
        v
    }

    #[test]
    fn decodes_a_namespace_envelope() {
        let meta = [ld(1, b"x"), ld(11, &[ld(1, b"a"), ld(2, b"b")].concat())].concat();
        let raw = ld(1, &meta);
        let tm = [ld(1, b"v1"), ld(2, b"Namespace")].concat();
        let body = [b"k8s\0".to_vec(), ld(1, &tm), ld(2, &raw)].concat();
        assert_eq!(
            decode(&body),
            Ok(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "labels": {"a": "b"}}}))
        );
        assert!(decode(b"k8s\0\x0a\xff").is_err());
        assert!(decode(b"nope").is_err());
    }
}
