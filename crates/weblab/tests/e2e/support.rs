//! Starting a test world in its own address block and data directory.

use std::path::PathBuf;

use weblab::config::World;
use weblab::world::RunningWorld;
use weblab_trace::{Detail, Span};

/// A running world whose data directory is removed afterwards.
pub struct TestWorld {
    pub world: RunningWorld,
    pub dir: PathBuf,
}

impl Drop for TestWorld {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl std::ops::Deref for TestWorld {
    type Target = RunningWorld;
    fn deref(&self) -> &RunningWorld {
        &self.world
    }
}

/// A fresh data directory for a test.
pub fn data_dir(block: u8) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weblab-e2e-{block}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs an experiment that boots its own world: the default world moved
/// to 127.`block`.0.0/16, a fresh data directory removed afterwards.
pub async fn experiment<T>(
    block: u8,
    run: impl AsyncFnOnce(World, PathBuf) -> anyhow::Result<T>,
) -> T {
    let mut world = World::default_world();
    world.relocate(block);
    let dir = data_dir(block);
    std::fs::create_dir_all(&dir).unwrap();
    let done = run(world, dir.clone()).await;
    let _ = std::fs::remove_dir_all(&dir);
    done.expect("the experiment runs")
}

/// The default world, moved to 127.`block`.0.0/16.
pub async fn start(block: u8) -> TestWorld {
    let mut world = World::default_world();
    world.relocate(block);
    let dir = data_dir(block);
    let world = RunningWorld::start(world, dir.clone(), Detail::Full)
        .await
        .expect("the test world starts");
    TestWorld { world, dir }
}

/// The address of `host` as a string.
pub fn ip(w: &RunningWorld, host: &str) -> String {
    w.addr(host).to_string()
}

/// The first span matching `pred`, with its index.
pub fn find(spans: &[Span], pred: impl Fn(&Span) -> bool) -> Option<(usize, &Span)> {
    spans.iter().enumerate().find(|(_, s)| pred(s))
}

/// The kinds of the spans, for failure messages.
pub fn kinds(spans: &[Span]) -> Vec<String> {
    spans
        .iter()
        .map(|s| format!("{}@{}:{}", s.event.kind(), s.host, s.event))
        .collect()
}

/// Whether a command-line tool is there; when the environment demands the
/// interop tests (CI sets WEBLAB_REQUIRE_INTEROP=1), a missing tool fails.
pub fn tool(name: &str) -> bool {
    let found = std::process::Command::new(name).arg("-v").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("WEBLAB_REQUIRE_INTEROP").is_none(),
            "{name} is required (WEBLAB_REQUIRE_INTEROP is set) but not installed"
        );
        eprintln!("skipping: {name} is not installed");
    }
    found
}

/// The default world moved to `block`, changed by `edit`, then started.
pub async fn start_with(block: u8, edit: impl FnOnce(&mut World)) -> TestWorld {
    let mut world = World::default_world();
    world.relocate(block);
    edit(&mut world);
    let dir = data_dir(block);
    let world = RunningWorld::start(world, dir.clone(), Detail::Full)
        .await
        .expect("the test world starts");
    TestWorld { world, dir }
}

/// A `weblab` process started by a test: its output is collected as it
/// comes, and it is killed by its PID when dropped.
pub struct Proc {
    pub child: std::process::Child,
    out: std::sync::Arc<std::sync::Mutex<String>>,
    err: std::sync::Arc<std::sync::Mutex<String>>,
}

fn collect(pipe: impl std::io::Read + Send + 'static) -> std::sync::Arc<std::sync::Mutex<String>> {
    use std::io::BufRead;
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut t = sink.lock().unwrap();
            t.push_str(&line);
            t.push('\n');
        }
    });
    text
}

impl Proc {
    /// Runs `weblab ARGS` with `env` added.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_weblab"));
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("weblab starts");
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        Proc { child, out, err }
    }

    pub fn stdout(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    /// Waits until stdout or stderr contains `needle` (false after `within`
    /// or when the process ended first).
    pub async fn wait_for(&mut self, needle: &str, within: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if self.stdout().contains(needle) || self.stderr().contains(needle) {
                return true;
            }
            if self.alive().is_none() {
                // Let the reader threads catch up with the last lines.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                return self.stdout().contains(needle) || self.stderr().contains(needle);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        false
    }

    /// `Some(())` while the process runs.
    pub fn alive(&mut self) -> Option<()> {
        match self.child.try_wait() {
            Ok(None) => Some(()),
            _ => None,
        }
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the PID of a child we started and still own.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Waits for the process to end, at most `within`.
    pub async fn exit(&mut self, within: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TLS connection to `addr` that trusts the world's CA (`ca_pem`) and
/// offers `alpn`.
pub async fn tls_connect(
    addr: std::net::SocketAddr,
    ca_pem: &[u8],
    alpn: &[u8],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(cert.map_err(std::io::Error::other)?)
            .map_err(std::io::Error::other)?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("myapp.test").unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(name, tcp)
        .await
}

/// Writes `request` on `stream` and reads until the server closes (or
/// `within` passes): the raw response text.
pub async fn exchange<S>(mut stream: S, request: &[u8], within: std::time::Duration) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = stream.write_all(request).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(within, stream.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// Starts `weblab serve ROLE --host HOST` as its own process on `dir`;
/// the child (stop it by its PID) and the address its first line printed
/// (the port depends on privileges).
pub async fn serve(
    block: u8,
    dir: &std::path::Path,
    role: &str,
    host: &str,
) -> (std::process::Child, std::net::SocketAddr) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weblab"))
        .args(["--block", &block.to_string(), "--data"])
        .arg(dir)
        .args(["serve", role, "--host", host])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    });
    let line = tokio::time::timeout(std::time::Duration::from_secs(20), line)
        .await
        .unwrap()
        .unwrap();
    let addr = line
        .split_whitespace()
        .nth(3)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output {line:?}"));
    (child, addr)
}
