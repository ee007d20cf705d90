//! A recording tap on the wire between the agent and kube-sim: a TCP forwarder that notes
//! every HTTP/1.1 request as it arrives (method, path, user agent, when) and whether an answer
//! came back before the connection closed.
//!
//! ```text
//!  meshkeeper ──► tap (records request heads; first answer byte) ──► kube-sim
//! ```
//!
//! kube-sim's own request log holds only requests it answered: a write the agent sent and then
//! abandoned (its process gone while the server still worked on it) leaves no trace there. The
//! tap sees it arrive and sees no answer. HTTP/1.1 clients (hyper) do not pipeline, so bytes
//! from the server after a request head and before the next one are that request's answer.
//! When either side closes, the tap closes the other, as a real network would.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::lock;

/// One request seen on the wire.
#[derive(Debug, Clone)]
pub struct Req {
    pub conn: u64,
    pub method: String,
    pub path: String,
    /// The resource plural, its namespace and name, from the path.
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub user_agent: String,
    /// When its head arrived (forwarded to the server at once).
    pub sent: Instant,
    pub sent_wall: SystemTime,
    /// When the first byte of the answer came back.
    pub answered: Option<Instant>,
}

impl Req {
    /// A request that changes state: reviews (access, token) are POSTs that store nothing.
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") && !self.resource.ends_with("reviews")
    }

    pub fn by_meshkeeper(&self) -> bool {
        self.user_agent.starts_with("meshkeeper/")
    }

    /// `ns/name` (or `name`).
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name.clone().unwrap_or_default()),
            None => self.name.clone().unwrap_or_default(),
        }
    }
}

/// The running tap; it stops when dropped. It runs on a thread of its own (a current-thread
/// runtime), so its timestamps do not wait for the test's busy runtime (kube-sim, its actors,
/// other scenarios): they are when the bytes arrived.
pub struct Tap {
    log: Arc<Mutex<Vec<Req>>>,
    kubeconfig: tempfile::NamedTempFile,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Tap {
    /// Listens on a free loopback port, forwarding to the sim.
    pub async fn start(sim: &kube_sim::Sim) -> Tap {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("tap listen");
        listener.set_nonblocking(true).expect("tap non-blocking");
        let addr = listener.local_addr().expect("tap addr");
        let upstream = sim.addr();
        let log = Arc::new(Mutex::new(Vec::new()));
        let kubeconfig =
            crate::common::tmp_file(&kube_sim::kubeconfig(&format!("http://{addr}"), kube_sim::auth::ADMIN_TOKEN));
        let sink = log.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tap runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("tap listener");
                // Dropped with the runtime at the end: every connection is cut then.
                let mut conns = tokio::task::JoinSet::new();
                let mut next = 0u64;
                let accept = async {
                    loop {
                        tokio::select! {
                            accepted = listener.accept() => {
                                let Ok((client, _)) = accepted else { continue };
                                next += 1;
                                conns.spawn(relay(next, client, upstream, sink.clone()));
                            }
                            Some(_) = conns.join_next(), if !conns.is_empty() => {}
                        }
                    }
                };
                tokio::select! {
                    _ = stopped => {}
                    _ = accept => {}
                }
            });
        });
        Tap { log, kubeconfig, _stop: stop }
    }

    /// A kubeconfig (admin) that points at the tap.
    pub fn kubeconfig(&self) -> &Path {
        self.kubeconfig.path()
    }

    pub fn requests(&self) -> Vec<Req> {
        lock(&self.log).clone()
    }
}

/// Forwards one connection both ways until either side closes.
async fn relay(conn: u64, client: TcpStream, upstream: std::net::SocketAddr, log: Arc<Mutex<Vec<Req>>>) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    // The index (in the log) of the request whose answer is due on this connection.
    let current: Arc<Mutex<Option<usize>>> = Arc::new(Mutex::new(None));
    let up = {
        let (log, current) = (log.clone(), current.clone());
        async move {
            let mut buf: Vec<u8> = Vec::new();
            let mut chunk = vec![0u8; 16 * 1024];
            loop {
                // A request head.
                let end = loop {
                    if let Some(i) = find(&buf, b"\r\n\r\n") {
                        break i + 4;
                    }
                    match cr.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let (req, body_len, chunked) = parse_head(conn, &head);
                {
                    let mut l = lock(&log);
                    l.push(req);
                    *lock(&current) = Some(l.len() - 1);
                }
                if sw.write_all(&buf[..end]).await.is_err() {
                    return;
                }
                buf.drain(..end);
                if chunked {
                    // Not sent by kube-rs (its bodies have a length): pass the rest through as is.
                    if sw.write_all(&buf).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                    return;
                }
                // Its body.
                let mut left = body_len;
                let take = left.min(buf.len());
                if sw.write_all(&buf[..take]).await.is_err() {
                    return;
                }
                buf.drain(..take);
                left -= take;
                while left > 0 {
                    let n = match cr.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let take = left.min(n);
                    if sw.write_all(&chunk[..take]).await.is_err() {
                        return;
                    }
                    buf.extend_from_slice(&chunk[take..n]);
                    left -= take;
                }
            }
        }
    };
    let down = async move {
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            let n = match sr.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if let Some(i) = lock(&current).take() {
                lock(&log)[i].answered = Some(Instant::now());
            }
            if cw.write_all(&chunk[..n]).await.is_err() {
                return;
            }
        }
    };
    // Either side closing closes both (the halves are dropped here).
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The request, its body length and whether the body is chunked.
fn parse_head(conn: u64, head: &str) -> (Req, usize, bool) {
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split_whitespace();
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let (mut len, mut chunked, mut user_agent) = (0usize, false, String::new());
    for l in lines {
        let Some((k, v)) = l.split_once(':') else { continue };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        match k.as_str() {
            "content-length" => len = v.parse().unwrap_or(0),
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            "user-agent" => user_agent = v.to_string(),
            _ => {}
        }
    }
    let (resource, namespace, name, _) = parse_path(&path);
    let req = Req {
        conn,
        method,
        path,
        resource,
        namespace,
        name,
        user_agent,
        sent: Instant::now(),
        sent_wall: SystemTime::now(),
        answered: None,
    };
    (req, len, chunked)
}

/// (resource, namespace, name, subresource) of an API path.
pub fn parse_path(path: &str) -> (String, Option<String>, Option<String>, Option<String>) {
    let segs: Vec<&str> = path.split('?').next().unwrap_or_default().split('/').filter(|s| !s.is_empty()).collect();
    let rest: &[&str] = match segs.first() {
        Some(&"api") if segs.len() >= 2 => &segs[2..],
        Some(&"apis") if segs.len() >= 3 => &segs[3..],
        _ => return (path.to_string(), None, None, None),
    };
    let (ns, rest) =
        if rest.len() >= 3 && rest[0] == "namespaces" { (Some(rest[1].to_string()), &rest[2..]) } else { (None, rest) };
    let get = |i: usize| rest.get(i).map(|s| s.to_string());
    (get(0).unwrap_or_default(), ns, get(1), get(2))
}
