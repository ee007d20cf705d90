//! Tolerant decoding for the watches: an object that does not decode into its type costs that
//! object only.
//!
//! A real API server validates what it stores, but what reaches the agent can still differ
//! from k8s-openapi's types: a conversion webhook's answer, a proxy in between, a server newer
//! than the types. Decoded as the plain type, one such object fails a whole paged LIST, and
//! kube-runtime's watcher retries that list forever (the watch never syncs, `/readyz` stays
//! 503); on a watch stream kube-client reads the line as an empty `Status` and the watch is
//! reported failing ("the API server refused the request") until the next event.
//!
//! [`Tolerant<K>`] cuts each object's JSON text out of the stream (serde_json checks that it
//! is JSON without building anything), then reads the text as `K`: 20,000 realistic pods
//! decode in 386 ms instead of 326 ms (release; through a `serde_json::Value` it took 534-724
//! ms). An object that does not fit is read again as a `Value` and keeps only its metadata
//! and why; [`Tolerant::into_object`] logs it as one line (kind, namespace, name, the field
//! and the reason) and skips it. The cache keeps the object's last version that decoded, if
//! any, until the next event or list of it.
//!
//! ```text
//!  watch line / list item ─► its JSON text ─► K ───────────────────────► trim ─► cache
//!                                         └─► Value ─► (metadata, why) ─► one warning, skipped
//! ```

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::{DeserializeOwned, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An object as the API server sent it: decoded as `K`, or what is known of one that was not.
#[derive(Debug, Clone)]
pub struct Tolerant<K>(pub Result<K, Undecodable>);

/// An object that does not decode into its type.
#[derive(Debug, Clone, Default)]
pub struct Undecodable {
    /// Its metadata, as far as that decodes (else empty).
    pub meta: ObjectMeta,
    /// Where and why, e.g. `spec: invalid type: string "oops", expected NamespaceSpec`.
    pub error: String,
}

/// The name serde_json's deserializers answer with an object's text, unparsed (the way
/// `serde_json::value::RawValue` is read; agent/Cargo.toml turns its `raw_value` feature on).
/// It is serde_json's internal name, not its API: should it change, the fallback below keeps
/// decoding correct, only slower, and a unit test notices.
/// Any other deserializer, serde's buffer, or serde_json without that feature hands the
/// visitor the object itself: slower (through a `Value`), as correct.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

impl<'de, K: DeserializeOwned> Deserialize<'de> for Tolerant<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_newtype_struct(RAW_VALUE_TOKEN, TolerantVisitor(PhantomData))
    }
}

impl<K: DeserializeOwned> Tolerant<K> {
    /// From an object's JSON text (valid JSON: serde_json checked it while cutting it out).
    fn from_text(text: &str) -> Self {
        #[cfg(test)]
        tests::TEXT_PATH.with(|n| n.set(n.get() + 1));
        match serde_json::from_str::<K>(text) {
            Ok(k) => Tolerant(Ok(k)),
            Err(plain) => Tolerant(Err(Undecodable::explain::<K>(serde_json::from_str(text).ok(), plain))),
        }
    }

    fn from_value(value: Value) -> Self {
        match K::deserialize(&value) {
            Ok(k) => Tolerant(Ok(k)),
            Err(plain) => Tolerant(Err(Undecodable::explain::<K>(Some(value), plain))),
        }
    }
}

impl Undecodable {
    /// Why `value` is no `K` (again, only now, with the path: that costs a String per key),
    /// and its metadata as far as that decodes.
    fn explain<K: DeserializeOwned>(value: Option<Value>, plain: serde_json::Error) -> Undecodable {
        let Some(value) = value else { return Undecodable { meta: ObjectMeta::default(), error: plain.to_string() } };
        let error = match serde_path_to_error::deserialize::<_, K>(&value) {
            Err(e) if e.path().to_string() != "." => format!("{}: {}", e.path(), e.inner()),
            _ => plain.to_string(),
        };
        let meta = value.get("metadata").and_then(|m| ObjectMeta::deserialize(m).ok()).unwrap_or_default();
        Undecodable { meta, error }
    }
}

struct TolerantVisitor<K>(PhantomData<K>);

impl<'de, K: DeserializeOwned> Visitor<'de> for TolerantVisitor<K> {
    type Value = Tolerant<K>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Kubernetes object")
    }

    /// serde_json: one entry, the token and the object's text; any other map is the object.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Ok(Tolerant::from_value(Value::Object(Default::default())));
        };
        if key == RAW_VALUE_TOKEN {
            return map.next_value_seed(TextSeed(PhantomData));
        }
        let mut object = serde_json::Map::new();
        object.insert(key, map.next_value()?);
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            object.insert(k, v);
        }
        Ok(Tolerant::from_value(Value::Object(object)))
    }

    /// A deserializer that knows no raw values (serde's buffer, e.g. for a watch event whose
    /// object comes before its type).
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Ok(Tolerant::from_value(Value::deserialize(d)?))
    }
}

/// The object's text, borrowed where the input allows.
struct TextSeed<K>(PhantomData<K>);

impl<'de, K: DeserializeOwned> DeserializeSeed<'de> for TextSeed<K> {
    type Value = Tolerant<K>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, K: DeserializeOwned> Visitor<'de> for TextSeed<K> {
    type Value = Tolerant<K>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object's JSON text")
    }
    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Tolerant::from_text(text))
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Tolerant<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn api_version(dt: &()) -> Cow<'_, str> {
        K::api_version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        match &self.0 {
            Ok(k) => k.meta(),
            Err(u) => &u.meta,
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match &mut self.0 {
            Ok(k) => k.meta_mut(),
            Err(u) => &mut u.meta,
        }
    }
}

impl<K: Resource<DynamicType = ()>> Tolerant<K> {
    /// `kind/namespace/name` (lower-case kind) of the object, as findings name objects.
    pub fn describe(&self) -> String {
        let meta = self.meta();
        let mut parts = vec![K::kind(&()).to_lowercase()];
        parts.extend(meta.namespace.clone());
        parts.push(meta.name.clone().unwrap_or_else(|| "(no name)".into()));
        parts.join("/")
    }

    /// The object; None when it did not decode, logged as one line.
    pub fn into_object(self) -> Option<K> {
        match self.0 {
            Ok(k) => Some(k),
            Err(ref u) => {
                tracing::warn!(object = %self.describe(), error = %u.error, "skipped an object that does not decode into its type");
                None
            }
        }
    }
}

/// Wraps a watch's trim: undecodable objects and objects without a name are logged (one line
/// each) and skipped.
pub fn trimming<K, T>(trim: impl Fn(K) -> Option<T>) -> impl Fn(Tolerant<K>) -> Option<T>
where
    K: Resource<DynamicType = ()>,
{
    move |t: Tolerant<K>| {
        let what = t.describe();
        let trimmed = trim(t.into_object()?);
        if trimmed.is_none() {
            tracing::warn!(object = %what, "skipped a malformed object without a name");
        }
        trimmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    use kube::ResourceExt;
    use kube::core::ObjectList;
    use kube::core::watch::WatchEvent;
    use serde_json::json;

    #[test]
    fn an_object_that_does_not_decode_keeps_its_metadata_and_why() {
        let good: Tolerant<Namespace> =
            serde_json::from_value(json!({"metadata": {"name": "a", "resourceVersion": "5"}})).unwrap();
        assert_eq!(good.0.as_ref().unwrap().metadata.name.as_deref(), Some("a"));
        assert_eq!(good.resource_version().as_deref(), Some("5"));
        let bad: Tolerant<Pod> = serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "shop",
            "resourceVersion": "7"}, "spec": {"containers": [{"name": "app", "image": 42}]}}))
        .unwrap();
        assert_eq!(bad.describe(), "pod/shop/p");
        assert_eq!(bad.resource_version().as_deref(), Some("7"), "the watcher still follows its version");
        let u = bad.0.as_ref().unwrap_err();
        assert_eq!(u.error, "spec.containers[0].image: invalid type: integer `42`, expected a string");
        // Even the metadata may be unusable: the object is still skipped, not the stream.
        let worse: Tolerant<Namespace> = serde_json::from_value(json!({"metadata": "x", "spec": 1})).unwrap();
        assert_eq!(worse.describe(), "namespace/(no name)");
        assert!(worse.into_object().is_none());
        // Not an object at all (JSON all the same): skipped too.
        let odd: Tolerant<Namespace> = serde_json::from_value(json!([1, 2])).unwrap();
        assert!(odd.0.is_err());
    }

    #[test]
    fn one_bad_item_no_longer_fails_a_list_or_a_watch_event() {
        let list = json!({"apiVersion": "v1", "kind": "NamespaceList", "metadata": {"resourceVersion": "9"}, "items": [
            {"metadata": {"name": "a"}}, {"metadata": {"name": "bad"}, "spec": "oops"}, {"metadata": {"name": "b"}}]})
        .to_string();
        assert!(serde_json::from_str::<ObjectList<Namespace>>(&list).is_err(), "the plain type fails the whole list");
        let l: ObjectList<Tolerant<Namespace>> = serde_json::from_str(&list).unwrap();
        let names: Vec<Option<String>> =
            l.items.into_iter().map(|t| t.into_object().and_then(|n| n.metadata.name)).collect();
        assert_eq!(names, [Some("a".to_string()), None, Some("b".to_string())]);
        // On a watch, in either field order (a buffered adjacently tagged enum).
        for line in [
            r#"{"type":"MODIFIED","object":{"metadata":{"name":"bad"},"spec":"oops"}}"#,
            r#"{"object":{"metadata":{"name":"bad"},"spec":"oops"},"type":"MODIFIED"}"#,
        ] {
            let ev: WatchEvent<Tolerant<Namespace>> = serde_json::from_str(line).unwrap();
            assert!(matches!(ev, WatchEvent::Modified(Tolerant(Err(_)))), "{line}");
        }
        assert!(serde_json::from_str::<WatchEvent<Tolerant<Namespace>>>("<html>").is_err(), "not JSON: an error");
    }

    thread_local! {
        /// Objects read from their text (the fast path) on this thread.
        pub static TEXT_PATH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    #[test]
    fn watch_lines_and_lists_take_the_fast_path_and_buffered_input_the_slow_one() {
        let count = || TEXT_PATH.with(|n| n.get());
        let before = count();
        let line = r#"{"type":"ADDED","object":{"metadata":{"name":"a"}}}"#;
        let ev: WatchEvent<Tolerant<Namespace>> = serde_json::from_str(line).unwrap();
        assert!(matches!(ev, WatchEvent::Added(Tolerant(Ok(_)))));
        assert_eq!(count(), before + 1, "read from its text (serde_json's raw value)");
        let list = r#"{"kind":"NamespaceList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"a"}}]}"#;
        let l: ObjectList<Tolerant<Namespace>> = serde_json::from_str(list).unwrap();
        assert!(l.items[0].0.is_ok());
        assert_eq!(count(), before + 2, "list items too");
        // An event whose object comes before its type is buffered by serde: through a Value.
        let late = r#"{"object":{"metadata":{"name":"a"}},"type":"ADDED"}"#;
        let ev: WatchEvent<Tolerant<Namespace>> = serde_json::from_str(late).unwrap();
        assert!(matches!(ev, WatchEvent::Added(Tolerant(Ok(_)))));
        assert_eq!(count(), before + 2, "the slow path, as correct");
    }

    #[test]
    fn the_trim_is_skipped_for_what_it_cannot_use() {
        let trim = trimming(|n: Namespace| n.metadata.name);
        let ok = Tolerant(Ok(Namespace {
            metadata: ObjectMeta { name: Some("a".into()), ..Default::default() },
            ..Default::default()
        }));
        assert_eq!(trim(ok).as_deref(), Some("a"));
        assert_eq!(trim(Tolerant(Ok(Namespace::default()))), None, "no name");
        assert_eq!(trim(Tolerant(Err(Undecodable::default()))), None, "undecodable");
    }
}
