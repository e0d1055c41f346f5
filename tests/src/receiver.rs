//! A webhook receiver on loopback for the channel tests: it records every
//! request (headers and body) and answers from a script of status codes
//! (the last repeats), or holds every request until released.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::watch;

/// A request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    script: VecDeque<u16>,
    holding: usize,
    answered: usize,
}

pub struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    hold: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Answers 204 to everything.
    pub async fn start() -> Receiver {
        Receiver::answering(&[204]).await
    }

    /// Answers with `codes` in turn; the last one from then on.
    pub async fn answering(codes: &[u16]) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("its address");
        let state = Arc::new(Mutex::new(State { script: codes.iter().copied().collect(), ..State::default() }));
        let (hold, held) = watch::channel(false);
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let state = shared.clone();
                let held = held.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let state = state.clone();
                        let mut held = held.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                                .collect();
                            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let body = String::from_utf8_lossy(&body).to_string();
                            let code = {
                                let mut s = state.lock().unwrap();
                                s.received.push(Received { path, headers, body });
                                if *held.borrow() {
                                    s.holding += 1;
                                }
                                if s.script.len() > 1 { s.script.pop_front() } else { s.script.front().copied() }
                            };
                            // Held: no answer until released.
                            let _ = held.wait_for(|h| !*h).await;
                            state.lock().unwrap().answered += 1;
                            let mut response = Response::new(Full::new(Bytes::new()));
                            *response.status_mut() = hyper::StatusCode::from_u16(code.unwrap_or(204)).unwrap();
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Receiver { addr, state, hold, task }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// From now on, every request waits without an answer until [`Receiver::release`].
    pub fn hold(&self) {
        let _ = self.hold.send(true);
    }

    pub fn release(&self) {
        let _ = self.hold.send(false);
    }

    /// Requests that arrived while held.
    pub fn held(&self) -> usize {
        self.state.lock().unwrap().holding
    }

    /// Requests answered so far.
    pub fn answered(&self) -> usize {
        self.state.lock().unwrap().answered
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.release();
        self.task.abort();
    }
}
