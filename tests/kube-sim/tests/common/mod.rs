//! A minimal HTTP/1.1 client over tokio's TcpStream (kube-sim's tests need no HTTP crate).
#![allow(dead_code)]

pub mod replay;

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub const ADMIN: &str = "kube-sim-admin-token";
/// Failure bound for any single step.
pub const BOUND: Duration = Duration::from_secs(10);

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub struct Client {
    pub addr: std::net::SocketAddr,
    pub token: Option<String>,
}

impl Client {
    pub fn new(addr: std::net::SocketAddr) -> Client {
        Client { addr, token: Some(ADMIN.into()) }
    }
    pub fn with_token(addr: std::net::SocketAddr, token: Option<&str>) -> Client {
        Client { addr, token: token.map(str::to_string) }
    }

    async fn send(&self, method: &str, path: &str, ctype: Option<&str>, body: &[u8]) -> std::io::Result<TcpStream> {
        let mut headers = vec![("User-Agent", "kube-sim-test/1.0"), ("Accept", "application/json")];
        if let Some(c) = ctype {
            headers.push(("Content-Type", c));
        }
        self.send_with(method, path, &headers, body).await
    }

    /// Sends a request with exactly these headers (plus Host, Connection, Authorization, Content-Length).
    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<TcpStream> {
        let mut s = TcpStream::connect(self.addr).await?;
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(t) = &self.token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        s.write_all(req.as_bytes()).await?;
        s.write_all(body).await?;
        Ok(s)
    }

    /// A whole response to a request with these headers.
    pub async fn req_with(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let s = tokio::time::timeout(BOUND, self.send_with(method, path, headers, body))
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: timed out"))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        tokio::time::timeout(BOUND, read_response(s))
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: timed out"))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Opens a watch with these headers; read its events with `next`.
    pub async fn watch_with(&self, path: &str, headers: &[(&str, &str)]) -> Watch {
        let s = self.send_with("GET", path, headers, b"").await.expect("connect");
        let mut r = BufReader::new(s);
        let (status, headers) =
            tokio::time::timeout(BOUND, read_head(&mut r)).await.expect("head in time").expect("head");
        let mut w = Watch { r, status, buf: Vec::new(), done: false };
        let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
        if !chunked {
            // Not a stream (an error answer): its body is the only "event".
            let mut body = Vec::new();
            let _ = w.r.read_to_end(&mut body).await;
            w.buf = body;
            w.buf.push(b'\n');
            w.done = true;
        }
        w
    }

    pub async fn try_req(&self, method: &str, path: &str, ctype: Option<&str>, body: &[u8]) -> std::io::Result<Resp> {
        let s = self.send(method, path, ctype, body).await?;
        read_response(s).await
    }

    pub async fn req(&self, method: &str, path: &str, ctype: Option<&str>, body: &[u8]) -> Resp {
        tokio::time::timeout(BOUND, self.try_req(method, path, ctype, body))
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: timed out"))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.req("GET", path, None, b"").await
    }
    pub async fn post(&self, path: &str, v: &Value) -> Resp {
        self.req("POST", path, Some("application/json"), v.to_string().as_bytes()).await
    }
    pub async fn put(&self, path: &str, v: &Value) -> Resp {
        self.req("PUT", path, Some("application/json"), v.to_string().as_bytes()).await
    }
    pub async fn patch(&self, path: &str, ctype: &str, body: &str) -> Resp {
        self.req("PATCH", path, Some(ctype), body.as_bytes()).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.req("DELETE", path, None, b"").await
    }

    /// Opens a watch; read its events with `next`.
    pub async fn watch(&self, path: &str) -> Watch {
        let s = self.send("GET", path, None, b"").await.expect("connect");
        let mut r = BufReader::new(s);
        let (status, _) = tokio::time::timeout(BOUND, read_head(&mut r)).await.expect("head in time").expect("head");
        Watch { r, status, buf: Vec::new(), done: false }
    }
}

async fn read_response(s: TcpStream) -> std::io::Result<Resp> {
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r).await?;
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        while let Some(c) = read_chunk(&mut r).await? {
            body.extend_from_slice(&c);
        }
    } else {
        r.read_to_end(&mut body).await?;
    }
    Ok(Resp { status, headers, body })
}

async fn read_head(r: &mut BufReader<TcpStream>) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    r.read_line(&mut line).await?;
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).await?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok((status, headers))
}

/// One chunk of a chunked body; None at the end.
async fn read_chunk(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let n = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
    if n == 0 {
        return Ok(None);
    }
    let mut buf = vec![0; n + 2];
    r.read_exact(&mut buf).await?;
    buf.truncate(n);
    Ok(Some(buf))
}

pub struct Watch {
    r: BufReader<TcpStream>,
    pub status: u16,
    buf: Vec<u8>,
    done: bool,
}

impl Watch {
    /// The next event, None when the stream ended cleanly.
    pub async fn next(&mut self) -> Option<Value> {
        tokio::time::timeout(BOUND, self.next_unbounded()).await.expect("watch event in time")
    }

    /// The next event if one comes within `d` (Err when none did; the watch is then in an
    /// unknown state and should only be dropped).
    pub async fn next_within(&mut self, d: Duration) -> Result<Option<Value>, ()> {
        tokio::time::timeout(d, self.next_unbounded()).await.map_err(|_| ())
    }

    pub async fn next_unbounded(&mut self) -> Option<Value> {
        let line = self.next_line_unbounded().await?;
        Some(serde_json::from_slice(&line).expect("event is JSON"))
    }

    /// The next line as it came (with its newline), None when the stream ended cleanly; bounded.
    pub async fn next_line(&mut self) -> Option<Vec<u8>> {
        tokio::time::timeout(BOUND, self.next_line_unbounded()).await.expect("watch line in time")
    }

    async fn next_line_unbounded(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                return Some(self.buf.drain(..=i).collect());
            }
            if self.done {
                return None;
            }
            match read_chunk(&mut self.r).await {
                Ok(Some(c)) => self.buf.extend_from_slice(&c),
                _ => self.done = true,
            }
        }
    }

    /// Reads what is left of the body (bounded): the bytes, and whether it ended cleanly (the
    /// chunked body's last chunk) rather than with the connection closed in the middle.
    pub async fn rest(&mut self) -> (Vec<u8>, bool) {
        tokio::time::timeout(BOUND, async {
            let mut out = std::mem::take(&mut self.buf);
            if self.done {
                return (out, true);
            }
            loop {
                let mut line = String::new();
                match self.r.read_line(&mut line).await {
                    Ok(0) | Err(_) => return (out, false),
                    Ok(_) => {}
                }
                let n = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
                if n == 0 {
                    return (out, true);
                }
                let mut buf = vec![0; n + 2];
                if self.r.read_exact(&mut buf).await.is_err() {
                    return (out, false);
                }
                out.extend_from_slice(&buf[..n]);
            }
        })
        .await
        .expect("the rest of the watch in time")
    }

    /// Skips events until one satisfies `f`.
    pub async fn until(&mut self, f: impl Fn(&Value) -> bool) -> Value {
        loop {
            let ev = self.next().await.expect("stream ended before the expected event");
            if f(&ev) {
                return ev;
            }
        }
    }
}

/// Waits until `f` holds, re-checking after every change in the store (bounded by BOUND).
pub async fn until(c: &kube_sim::Cluster, what: &str, f: impl Fn(&kube_sim::Cluster) -> bool) {
    let mut rx = c.subscribe();
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        if f(c) {
            return;
        }
        // NB: a flood of events must not hide the deadline (Timeout polls the receiver first).
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out waiting for {what}");
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => panic!("timed out waiting for {what}"),
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => panic!("store closed"),
            Ok(_) => {}
        }
    }
}

/// The next store event, failing the test at `deadline` (checked first: a flood of events
/// must not hide it).
pub async fn next_event(
    rx: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<kube_sim::store::Event>>,
    deadline: tokio::time::Instant,
) -> std::sync::Arc<kube_sim::store::Event> {
    loop {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for events");
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => panic!("timed out waiting for events"),
            Ok(Ok(ev)) => return ev,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(e)) => panic!("event stream: {e}"),
        }
    }
}

pub async fn sim() -> kube_sim::Sim {
    kube_sim::Sim::start(kube_sim::SimOptions::default().actors(false)).await.expect("sim starts")
}

pub fn ns_obj(name: &str) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

pub fn pod(name: &str, labels: Value) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]}})
}
