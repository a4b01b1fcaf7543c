//! The same API tests as `api.rs`, on a SQLite file: each test gets a new
//! database file, so reads take the path that runs them on the asking
//! thread (`sqlite_read.rs`) while writes go through sqlx, and every test
//! that writes then reads checks that the reads see the writes.

#[path = "api.rs"]
mod api;

use std::sync::atomic::{AtomicU32, Ordering};

/// A URL for a new database file under the system's temporary directory.
pub async fn database_url() -> Option<String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    if n == 0 {
        // What earlier runs of these tests left behind.
        let mine = format!("weblab-app-file-{}-", std::process::id());
        for e in std::fs::read_dir(std::env::temp_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("weblab-app-file-") && !name.starts_with(&mine) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = std::env::temp_dir().join(format!("weblab-app-file-{}-{}", std::process::id(), n));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Some(format!("sqlite://{}/app.db?mode=rwc", dir.display()))
}
