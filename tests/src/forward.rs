//! Makes a service inside a lab namespace reachable from the host: listens
//! on an address of the root namespace (the demo uses 127.0.0.1) and relays
//! each TCP connection to the service through a thread that has joined the
//! namespace (sockets stay in the namespace they were opened in).
//!
//! Only connections the host opens are relayed, to one fixed address: no
//! route or link joins the lab to the host, so nothing the lab sends (its
//! probes above all) can leave it.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

/// A running relay; stops accepting when dropped.
pub struct Forward {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

type Dial = SyncSender<io::Result<TcpStream>>;

impl Forward {
    /// Binds `listen` here (port 0: any free port) and relays to `target`
    /// inside network namespace `netns`. Connections that arrive before the
    /// target listens are closed.
    pub fn start(listen: SocketAddr, netns: &str, target: SocketAddr) -> Result<Forward> {
        let listener =
            TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (dial_tx, dial_rx) = channel::<Dial>();
        let (ready_tx, ready_rx) = channel::<Result<()>>();
        let netns = netns.to_string();
        // The dialer lives in the namespace; it ends when the acceptor does.
        std::thread::spawn(move || {
            if let Err(e) = darkwatch_netlab::netns::enter(&netns) {
                let _ = ready_tx.send(Err(e.into()));
                return;
            }
            let _ = ready_tx.send(Ok(()));
            for reply in dial_rx {
                let _ = reply.send(TcpStream::connect_timeout(&target, Duration::from_secs(5)));
            }
        });
        ready_rx
            .recv()
            .context("the relay's dialer thread died")??;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let accept = std::thread::spawn(move || accept_loop(listener, dial_tx, &stop2));
        Ok(Forward {
            addr,
            stop,
            accept: Some(accept),
        })
    }

    /// The address bound in the root namespace.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, dial: Sender<Dial>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let (tx, rx) = sync_channel(1);
        if dial.send(tx).is_err() {
            return;
        }
        match rx.recv() {
            Ok(Ok(upstream)) => relay(client, upstream),
            // Not up yet (or gone): the client sees the connection close.
            _ => drop(client),
        }
    }
}

/// Copies both ways on two threads; each direction's end is passed on as
/// a half-close, so HTTP keep-alive and request bodies work.
fn relay(client: TcpStream, upstream: TcpStream) {
    let _ = client.set_nonblocking(false);
    for (from, to) in [(&client, &upstream), (&upstream, &client)] {
        let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
            return;
        };
        std::thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
    }
}
