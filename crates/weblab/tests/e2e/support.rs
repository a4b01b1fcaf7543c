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
