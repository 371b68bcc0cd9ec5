//! A webhook receiver inside a lab namespace, for testing the collector's
//! alerts: a thread joins the namespace (setns affects only the calling
//! thread), listens on a lab address and records every POST body. The first
//! `refuse_first` requests are answered 503 so that tests see the
//! collector retry.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::Value;

/// What the receiver saw.
#[derive(Debug, Default, Clone)]
pub struct Received {
    /// Requests answered 503.
    pub refused: usize,
    /// Bodies of the requests answered 200, in arrival order.
    pub accepted: Vec<Value>,
}

pub struct WebhookSink {
    pub url: String,
    seen: Arc<Mutex<Received>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WebhookSink {
    /// Listens on `addr` inside network namespace `netns`.
    pub fn start(netns: &str, addr: SocketAddr, refuse_first: usize) -> Result<WebhookSink> {
        let netns = netns.to_string();
        let seen = Arc::new(Mutex::new(Received::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel::<Result<()>>();
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            if let Err(e) = darkwatch_netlab::netns::enter(&netns) {
                let _ = tx.send(Err(e.into()));
                return;
            }
            let listener =
                match TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|_| l)) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = tx.send(Err(anyhow::anyhow!("bind {addr}: {e}")));
                        return;
                    }
                };
            let _ = tx.send(Ok(()));
            let mut n = 0usize;
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let refuse = n < refuse_first;
                        n += 1;
                        if let Ok(body) = serve_one(conn, refuse) {
                            let mut s = seen2.lock().unwrap_or_else(|e| e.into_inner());
                            if refuse {
                                s.refused += 1;
                            } else {
                                s.accepted
                                    .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                            }
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!(e),
            Err(_) => bail!("webhook receiver did not start"),
        }
        Ok(WebhookSink {
            url: format!("http://{addr}/hook"),
            seen,
            stop,
            thread: Some(thread),
        })
    }

    pub fn received(&self) -> Received {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one HTTP request and answers it; returns the body.
fn serve_one(conn: TcpStream, refuse: bool) -> Result<Vec<u8>> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut r = BufReader::new(conn.try_clone()?);
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            bail!("connection closed in headers");
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse()?;
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    let status = if refuse {
        "503 Service Unavailable"
    } else {
        "200 OK"
    };
    let mut w = conn;
    write!(
        w,
        "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )?;
    Ok(body)
}
