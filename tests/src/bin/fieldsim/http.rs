//! The little HTTP the simulator does itself: the administrator's calls, the convergence
//! check's document listings, and a loopback relay that can lose a sync's answer on purpose.
//! The phones' own HTTP is mobile-ffi's.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

pub type Result<T> = std::result::Result<T, String>;

/// A JSON API client with one bearer token.
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    agent: ureq::Agent,
    token: String,
}

impl Api {
    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(120)))
            .http_status_as_error(false)
            .build()
            .into()
    }

    pub fn login(base: &str, username: &str, password: &str, device_id: &str) -> Result<Self> {
        let agent = Self::agent();
        let mut api = Api {
            base: base.trim_end_matches('/').to_owned(),
            agent,
            token: String::new(),
        };
        let grant = api.call(
            "POST",
            "/api/v1/auth/login",
            Some(&json!({"username": username, "password": password, "device_id": device_id})),
        )?;
        api.token = grant.1["access_token"]
            .as_str()
            .ok_or_else(|| format!("login {username}: {}", grant.1))?
            .to_owned();
        Ok(api)
    }

    /// One request; returns the status and the JSON body (`null` when it is not JSON).
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let reply = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("POST", Some(body)) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_json(body),
            ("PATCH", Some(body)) => self
                .agent
                .patch(&url)
                .header("Authorization", &auth)
                .send_json(body),
            _ => return Err(format!("unsupported request {method} {path}")),
        };
        let mut reply = reply.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = reply.status().as_u16();
        let bytes = reply
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| format!("{method} {path}: {e}"))?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// `PUT /blobs/{sha256}` of a whole photo; returns the status (404 when the server has no
    /// photo store).
    pub fn put_blob(&self, sha256: &str, bytes: &[u8]) -> Result<u16> {
        let reply = self
            .agent
            .put(format!("{}/api/v1/blobs/{sha256}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .content_type("application/octet-stream")
            .send(bytes)
            .map_err(|e| format!("PUT /blobs/{sha256}: {e}"))?;
        Ok(reply.status().as_u16())
    }

    /// A request that must succeed with 2xx.
    pub fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        match self.call(method, path, body)? {
            (200..=299, value) => Ok(value),
            (status, value) => Err(format!("{method} {path}: {status} {value}")),
        }
    }

    /// Every page of `GET /docs`: document id → sorted hex heads of all the caller may read.
    pub fn doc_heads(&self) -> Result<std::collections::BTreeMap<String, Vec<String>>> {
        self.listed_heads("")
    }

    /// Every page of `GET /docs?delivered=true`: what the caller's phones receive at sync.
    pub fn delivered_heads(&self) -> Result<std::collections::BTreeMap<String, Vec<String>>> {
        self.listed_heads("&delivered=true")
    }

    fn listed_heads(
        &self,
        filter: &str,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>> {
        let mut out = std::collections::BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                Some(id) => format!("/api/v1/docs?limit=500{filter}&after={id}"),
                None => format!("/api/v1/docs?limit=500{filter}"),
            };
            let page = self.ok("GET", &path, None)?;
            for doc in page["docs"].as_array().into_iter().flatten() {
                let mut heads: Vec<String> = doc["heads"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|h| h.as_str().map(str::to_owned))
                    .collect();
                heads.sort();
                out.insert(doc["id"].as_str().unwrap_or_default().to_owned(), heads);
            }
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => return Ok(out),
            }
        }
    }
}

/// A loopback relay in front of the server for one phone. When armed, it lets the next request
/// through and drops the connection as the server's answer comes back: the server has done the
/// work, the phone sees a broken connection, as when signal is lost mid-sync.
#[derive(Debug, Clone)]
pub struct Relay {
    pub url: String,
    armed: Arc<AtomicBool>,
}

impl Relay {
    pub fn start(server_url: &str) -> Result<Self> {
        let host = server_url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let upstream = host
            .to_socket_addrs()
            .map_err(|e| format!("server address {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("server address {host} does not resolve"))?;
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let url = format!(
            "http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let armed = Arc::new(AtomicBool::new(false));
        let flag = armed.clone();
        std::thread::spawn(move || {
            for phone in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let flag = flag.clone();
                let (Ok(mut phone_in), Ok(mut server_out)) =
                    (phone.try_clone(), server.try_clone())
                else {
                    continue;
                };
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut phone_in, &mut server_out);
                    let _ = server_out.shutdown(Shutdown::Write);
                });
                std::thread::spawn(move || answer(server, phone, &flag));
            }
        });
        Ok(Relay { url, armed })
    }

    /// Loses the answer to the next request.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}

/// Answers the relays dropped, across all phones.
static ANSWERS_LOST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many server answers the relays have dropped so far (the phone library retries them
/// itself, so the phones' own attempt counts do not show them).
pub fn answers_lost() -> u64 {
    ANSWERS_LOST.load(Ordering::SeqCst)
}

fn answer(mut server: TcpStream, mut phone: TcpStream, armed: &AtomicBool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if armed.swap(false, Ordering::SeqCst) {
            ANSWERS_LOST.fetch_add(1, Ordering::SeqCst);
            break;
        }
        if phone.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = phone.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}
