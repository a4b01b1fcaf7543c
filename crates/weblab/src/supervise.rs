//! Keeping roles up (`weblab up`, `weblab serve`): a role whose server
//! ends or panics is reported and restarted with backoff while the others
//! keep answering; SIGTERM or Ctrl-C drains the world gently, front to
//! back, and a second signal ends the process at once.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use weblab_server::{Exit, ServerHandle};

use crate::world::{Boot, Role, Started};

/// The first wait before restarting a role that died, and the longest.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A role that stayed up this long starts again from the first backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// SIGTERM and SIGINT, registered before anything starts so that an early
/// signal is not lost.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn new() -> Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    /// The next SIGTERM or SIGINT, by name.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// A test hook: `WEBLAB_TEST_PANIC=HOST:DELAY` (e.g. `web1:1s`) makes that
/// host's role panic once, DELAY after it first starts, so tests can watch
/// the supervisor bring it back.
fn armed_fault(role: &Role) -> Option<Duration> {
    let spec = std::env::var("WEBLAB_TEST_PANIC").ok()?;
    let (host, delay) = spec.split_once(':')?;
    if host != role.host {
        return None;
    }
    crate::units::duration(delay).ok().map(Duration::from_nanos)
}

/// Resolves when any of `servers` ends, with which one and why.
async fn any_ended(servers: &mut [ServerHandle]) -> (usize, Exit) {
    let mut waits: Vec<Pin<Box<dyn Future<Output = Exit> + Send + '_>>> = servers
        .iter_mut()
        .map(|s| Box::pin(s.ended()) as Pin<Box<dyn Future<Output = Exit> + Send>>)
        .collect();
    if waits.is_empty() {
        return std::future::pending().await;
    }
    poll_fn(|cx| {
        for (i, w) in waits.iter_mut().enumerate() {
            if let Poll::Ready(exit) = w.as_mut().poll(cx) {
                return Poll::Ready((i, exit));
            }
        }
        Poll::Pending
    })
    .await
}

/// Keeps one role up until told to stop; returns its servers then, for
/// the caller to drain in order.
async fn keep_up(
    boot: Boot,
    role: Role,
    mut current: Started,
    mut stop: watch::Receiver<bool>,
) -> (Role, Vec<ServerHandle>) {
    let mut backoff = BACKOFF_FIRST;
    let mut since = Instant::now();
    if let Some(delay) = armed_fault(&role)
        && let Some(first) = current.servers.first_mut()
    {
        let host = role.host.clone();
        first.watch_task(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            panic!("test fault injected into {host} (WEBLAB_TEST_PANIC)");
        }));
    }
    loop {
        let ended = tokio::select! {
            e = any_ended(&mut current.servers) => Some(e),
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some((which, exit)) = ended else {
            return (role, std::mem::take(&mut current.servers));
        };
        let addr = current.servers[which].addr;
        // The rest of the role goes down with it, so it restarts whole.
        current.servers.clear();
        if since.elapsed() >= STABLE_AFTER {
            backoff = BACKOFF_FIRST;
        }
        eprintln!("role {role} on {addr} stopped: {exit}; restarting in {backoff:?}");
        loop {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.wait_for(|s| *s) => return (role, Vec::new()),
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
            match boot.start(&role).await {
                Ok(started) => {
                    let addrs: Vec<String> =
                        started.servers.iter().map(|s| s.addr.to_string()).collect();
                    eprintln!("role {role} is back on {}", addrs.join(", "));
                    current = started;
                    since = Instant::now();
                    break;
                }
                Err(e) => eprintln!("role {role} cannot restart: {e:#}; next try in {backoff:?}"),
            }
        }
    }
}

/// Drains every role's servers within `grace`, front tier first.
async fn drain(mut roles: Vec<(Role, Vec<ServerHandle>)>, grace: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + grace;
    roles.sort_by_key(|(r, _)| r.service.drain_tier());
    let mut all = true;
    let mut tiers: Vec<Vec<ServerHandle>> = Vec::new();
    let mut last_tier = None;
    for (role, servers) in roles {
        if last_tier != Some(role.service.drain_tier()) {
            tiers.push(Vec::new());
            last_tier = Some(role.service.drain_tier());
        }
        if let Some(t) = tiers.last_mut() {
            t.extend(servers);
        }
    }
    for tier in tiers {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let mut set = tokio::task::JoinSet::new();
        for s in tier {
            set.spawn(s.drain(left));
        }
        while let Some(done) = set.join_next().await {
            all &= done.unwrap_or(false);
        }
    }
    all
}

/// Starts `roles` (every one must start, or this fails), calls `on_up`
/// with what started, keeps them up, and on the first SIGTERM/SIGINT
/// drains them within `grace`. A second signal exits at once (status 130).
pub async fn run(
    boot: Boot,
    roles: Vec<Role>,
    grace: Duration,
    on_up: impl FnOnce(&[(Role, Vec<std::net::SocketAddr>)]),
) -> Result<()> {
    let mut signals = Signals::new()?;
    let mut started = Vec::new();
    for role in &roles {
        let s = boot
            .start(role)
            .await
            .with_context(|| format!("role {role} cannot start"))?;
        started.push((role.clone(), s));
    }
    let shown: Vec<_> = started
        .iter()
        .map(|(r, s)| (r.clone(), s.servers.iter().map(|h| h.addr).collect()))
        .collect();
    on_up(&shown);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut keepers = tokio::task::JoinSet::new();
    for (role, s) in started {
        keepers.spawn(keep_up(boot.clone(), role, s, stop_rx.clone()));
    }
    let which = signals.next().await;
    eprintln!(
        "{which}: stopping; in-flight requests have {grace:?} to finish (signal again to exit now)"
    );
    tokio::spawn(async move {
        let again = signals.next().await;
        eprintln!("{again} again: exiting now");
        std::process::exit(130);
    });
    let _ = stop_tx.send(true);
    let mut servers = Vec::new();
    while let Some(r) = keepers.join_next().await {
        if let Ok(pair) = r {
            servers.push(pair);
        }
    }
    if drain(servers, grace).await {
        eprintln!("stopped: every in-flight request finished");
    } else {
        eprintln!("stopped: the grace period ended with requests still in flight");
    }
    Ok(())
}
